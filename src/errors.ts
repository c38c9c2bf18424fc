// One class per kind of failure, each with a stable code. Messages say what
// happened and what to do; the CLI prints them without a stack unless --debug.

/**
 * Every exit code layerfold uses, for every command (the README's "Exit codes"
 * lists this table; a test keeps the two equal). `run` and `shell` differ only
 * as docker run does: there the command's own exit code passes through, so
 * layerfold's own failures exit 125 (the `error[CODE]` line says which kind).
 */
export const EXIT_CODES = [
  { exit: 0, code: "", meaning: "success (also when the reader of stdout stopped early, as head does)" },
  { exit: 1, code: "", meaning: "an unexpected failure (a bug: run again with --debug and report it)" },
  { exit: 2, code: "E_USAGE, E_CONFIG", meaning: "a bad command line (unknown option, bad flag value) or config file" },
  { exit: 3, code: "E_HASH_MISMATCH", meaning: "an artifact does not have the sha256 it must have" },
  { exit: 4, code: "E_UNSAFE_ARCHIVE", meaning: "an archive or package tries path traversal, an escaping link, a device node, a bomb, a path twice or refused setuid files" },
  { exit: 5, code: "E_PATH_CONFLICT", meaning: "two packages put different things at one path" },
  { exit: 6, code: "E_RESOLVE", meaning: "dependencies cannot be satisfied" },
  { exit: 7, code: "E_NETWORK", meaning: "an index, archive, registry or engine cannot be reached" },
  { exit: 8, code: "E_SIGNATURE", meaning: "a signature does not verify" },
  { exit: 9, code: "E_LOCK", meaning: "layerfold.lock is missing entries or out of date (`lock --check`, `--frozen`)" },
  { exit: 10, code: "E_STORE_CORRUPT, E_STORE_BUSY", meaning: "the store has a bad entry, or another process holds it" },
  { exit: 11, code: "E_IMAGE_LIMIT", meaning: "the image would break registries or runtimes (too many layers, ...)" },
  { exit: 12, code: "E_REGISTRY", meaning: "a registry refused or failed an operation" },
  { exit: 13, code: "E_RUNTIME", meaning: "running a container or a check's tooling failed" },
  { exit: 14, code: "E_NOT_FOUND", meaning: "what was named (a build, an image, a package, a store) does not exist" },
  { exit: 15, code: "E_CHECK_FAILED", meaning: "`layerfold check` ran and found problems (the report lists them)" },
  { exit: 16, code: "E_NO_SPACE", meaning: "a disk is full (the message names the path)" },
  { exit: 17, code: "E_MALFORMED_ARCHIVE", meaning: "an archive or package is corrupt, truncated or not its format, or has names no filesystem holds (not UTF-8, too long)" },
  { exit: 125, code: "", meaning: "`run`, `shell`: layerfold itself failed (the `error[CODE]` line says how)" },
  { exit: 126, code: "E_CANNOT_EXECUTE", meaning: "`run`, `shell`: the command is in the image but cannot be executed" },
  { exit: 127, code: "E_COMMAND_NOT_FOUND", meaning: "`run`, `shell`: the command is not in the image" },
] as const;

/** `run` and `shell`: any other code is the command's own. */
export const RUN_FAILED_EXIT = 125;

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

/** A bad command line: an unknown option, a flag value that cannot be right. Exit 2. */
export class UsageError extends LayerfoldError {
  constructor(message: string) {
    super("E_USAGE", message, { exitCode: 2 });
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

/** An archive or package tries something unsafe (traversal, escaping link, device node, bomb, a path named twice). Exit 4. */
export class UnsafeArchiveError extends LayerfoldError {
  constructor(message: string) {
    super("E_UNSAFE_ARCHIVE", message, { exitCode: 4 });
  }
}

/**
 * An archive or package is corrupt, truncated or not the format it claims (a bad header, a gzip
 * cut short, "not a valid wheel"), or holds a name no Linux filesystem can (over 255 bytes a
 * component, not UTF-8). Nothing unsafe was attempted; the file is broken. Exit 17.
 */
export class MalformedArchiveError extends LayerfoldError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_MALFORMED_ARCHIVE", message, { ...options, exitCode: 17 });
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

/** Another process holds the store (a gc, or users while gc wants it). Exit 10. */
export class StoreBusyError extends LayerfoldError {
  constructor(message: string) {
    super("E_STORE_BUSY", message, { exitCode: 10 });
  }
}

/** A store entry failed verification; callers rebuild it. Exit 10. */
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

/** What was named (a build, an image, a package, a store) does not exist. Exit 14. */
export class NotFoundError extends LayerfoldError {
  constructor(message: string) {
    super("E_NOT_FOUND", message, { exitCode: 14 });
  }
}

/** `layerfold check` found problems (its report lists them). Exit 15. */
export class CheckFailedError extends LayerfoldError {
  constructor(message: string) {
    super("E_CHECK_FAILED", message, { exitCode: 15 });
  }
}

/** A disk is full. Exit 16. */
export class DiskFullError extends LayerfoldError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_NO_SPACE", message, { ...options, exitCode: 16 });
  }
}

/** `run`, `shell`: the command is not in the image. Exit 127, as a shell and docker run say. */
export class CommandNotFoundError extends LayerfoldError {
  constructor(message: string) {
    super("E_COMMAND_NOT_FOUND", message, { exitCode: 127 });
  }
}

/** `run`, `shell`: the command is in the image but cannot be executed. Exit 126. */
export class CannotExecuteError extends LayerfoldError {
  constructor(message: string) {
    super("E_CANNOT_EXECUTE", message, { exitCode: 126 });
  }
}
