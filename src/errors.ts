// One class per kind of failure, each with a stable code. Messages say what
// happened and what to do; the CLI prints them without a stack unless --debug.

export class LayerfoldError extends Error {
  readonly code: string;
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number;
  constructor(code: string, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** The config file is missing, fails to load or fails validation. Exit 2. */
export class ConfigError extends LayerfoldError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_CONFIG", message, { ...options, exitCode: 2 });
  }
}

/** A fetched or stored artifact does not have the hash it must have. Exit 3. */
export class HashMismatchError extends LayerfoldError {
  constructor(message: string) {
    super("E_HASH_MISMATCH", message, { exitCode: 3 });
  }
}

/** An archive or package tries something unsafe (traversal, escaping link, device node, bomb). Exit 4. */
export class UnsafeArchiveError extends LayerfoldError {
  constructor(message: string) {
    super("E_UNSAFE_ARCHIVE", message, { exitCode: 4 });
  }
}

/** Two packages put different content at one path. Exit 5. */
export class PathConflictError extends LayerfoldError {
  constructor(message: string) {
    super("E_PATH_CONFLICT", message, { exitCode: 5 });
  }
}

/** Dependencies cannot be satisfied. Exit 6. */
export class ResolveError extends LayerfoldError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_RESOLVE", message, { ...options, exitCode: 6 });
  }
}

/** A network peer (index, archive, registry) cannot be reached or answered badly. Exit 7. */
export class NetworkError extends LayerfoldError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_NETWORK", message, { ...options, exitCode: 7 });
  }
}

/** A signature does not verify against the configured keyring. Exit 8. */
export class SignatureError extends LayerfoldError {
  constructor(message: string) {
    super("E_SIGNATURE", message, { exitCode: 8 });
  }
}

/** The lock file is missing entries or disagrees with the config (e.g. under --frozen). Exit 9. */
export class LockError extends LayerfoldError {
  constructor(message: string) {
    super("E_LOCK", message, { exitCode: 9 });
  }
}

/** A store entry failed verification; callers rebuild it. */
export class CorruptStoreError extends LayerfoldError {
  constructor(message: string) {
    super("E_STORE_CORRUPT", message, { exitCode: 10 });
  }
}

/** The image would break registries or runtimes (too many layers, ...). Exit 11. */
export class ImageLimitError extends LayerfoldError {
  constructor(message: string) {
    super("E_IMAGE_LIMIT", message, { exitCode: 11 });
  }
}

/** A registry refused or failed an operation. Exit 12. */
export class RegistryError extends LayerfoldError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_REGISTRY", message, { ...options, exitCode: 12 });
  }
}

/** Running a container or a check failed. Exit 13. */
export class RuntimeError extends LayerfoldError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_RUNTIME", message, { ...options, exitCode: 13 });
  }
}
