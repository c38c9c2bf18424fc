// Output: plain lines unless a TTY; --json mode sends human lines to stderr.
// Every line goes through redact(), so a registered secret never reaches the terminal.

import { redact } from "./redact.ts";

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
  /** A progress update for one item (e.g. a layer); only drawn on a TTY. */
  progress(id: string, msg: string): void;
  /** Progress is drawn (a terminal); otherwise it goes as occasional plain lines, if at all. */
  readonly tty?: boolean;
}

export function createLogger(opts: { json?: boolean; debug?: boolean; quiet?: boolean } = {}): Logger {
  const out = opts.json ? process.stderr : process.stdout;
  const tty = Boolean(out.isTTY) && !opts.json;
  let live = false;
  const clear = () => { if (live) { out.write("\r\x1b[K"); live = false; } };
  return {
    tty: tty && !opts.quiet,
    info: (m) => { if (!opts.quiet) { clear(); out.write(redact(m) + "\n"); } },
    warn: (m) => { clear(); process.stderr.write(`warning: ${redact(m)}\n`); },
    debug: (m) => { if (opts.debug) { clear(); process.stderr.write(`debug: ${redact(m)}\n`); } },
    progress: (id, m) => {
      if (!tty || opts.quiet) return;
      // One terminal row: a wrapped line could not be redrawn in place.
      out.write(`\r\x1b[K${`${id}: ${redact(m)}`.slice(0, Math.max(20, (out.columns || 80) - 1))}`);
      live = true;
    },
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, debug() {}, progress() {} };

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
