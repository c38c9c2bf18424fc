// Progress of downloads (wheels, .debs, archives, registry blobs), for the whole
// process: the fetchers report bytes here, and the CLI's logger shows them. On a
// TTY one line is redrawn (files in flight, bytes, rate); elsewhere (CI logs) a
// big download gets a line when it ends, and a line every half minute while
// downloads run, so a multi-GB first build never sits silent.

import { formatBytes, type Logger } from "./log.ts";

/** A download in flight. */
export interface Transfer {
  /** Bytes received so far (absolute), and the total when known. */
  update(bytes: number, total?: number): void;
  done(): void;
}

const DRAW_EVERY_MS = 250;
const CI_LINE_EVERY_MS = 30_000;
/** Downloads at least this big get their own line in plain (non-TTY) output. */
const CI_BIG_BYTES = 32 * 1024 * 1024;

export class Transfers {
  private log: Logger | undefined;
  private readonly active = new Map<number, { what: string; got: number; total?: number }>();
  private next = 0;
  /** Bytes of finished transfers since the current run of downloads began, and when it began. */
  private finishedBytes = 0;
  private since = 0;
  private lastDraw = 0;
  private lastLine = 0;

  /** Where progress goes: the CLI's logger. Without one (library use) nothing is shown. */
  attach(log: Logger): void {
    this.log = log;
  }

  start(what: string): Transfer {
    const id = this.next++;
    const started = Date.now();
    if (this.active.size === 0) {
      this.since = started;
      this.finishedBytes = 0;
      this.lastLine = started;
    }
    const t = { what, got: 0, total: undefined as number | undefined };
    this.active.set(id, t);
    return {
      update: (bytes, total) => {
        t.got = bytes;
        if (total !== undefined) t.total = total;
        this.draw();
      },
      done: () => {
        if (!this.active.delete(id)) return;
        this.finishedBytes += t.got;
        const seconds = (Date.now() - started) / 1000;
        if (this.log && !this.log.tty && t.got >= CI_BIG_BYTES) {
          this.log.info(`downloaded ${t.what}: ${formatBytes(t.got)} in ${seconds.toFixed(1)}s (${formatBytes(t.got / Math.max(seconds, 0.001))}/s)`);
        }
        this.draw(true);
      },
    };
  }

  private draw(force = false): void {
    const log = this.log;
    if (!log) return;
    const now = Date.now();
    let got = this.finishedBytes;
    for (const t of this.active.values()) got += t.got;
    const rate = got / Math.max((now - this.since) / 1000, 0.001);
    if (log.tty) {
      if (!force && now - this.lastDraw < DRAW_EVERY_MS) return;
      this.lastDraw = now;
      if (this.active.size === 0) return;
      const biggest = [...this.active.values()].sort((a, b) => (b.total ?? b.got) - (a.total ?? a.got))[0]!;
      const pct = biggest.total ? ` ${Math.floor((100 * biggest.got) / biggest.total)}%` : "";
      log.progress("download", `${this.active.size} file${this.active.size === 1 ? "" : "s"}, ${formatBytes(got)} at ${formatBytes(rate)}/s; ${biggest.what}${pct}`);
    } else if (this.active.size > 0 && now - this.lastLine >= CI_LINE_EVERY_MS) {
      this.lastLine = now;
      log.info(`downloading ${this.active.size} file${this.active.size === 1 ? "" : "s"}: ${formatBytes(got)} so far (${formatBytes(rate)}/s)`);
    }
  }
}

/** The process's downloads. */
export const downloads = new Transfers();

/** Pass `source` through, counting its bytes as a download of `what`. */
export async function* countDownload(source: AsyncIterable<Buffer>, what: string, total?: number): AsyncGenerator<Buffer> {
  const transfer = downloads.start(what);
  let got = 0;
  try {
    for await (const chunk of source) {
      got += chunk.length;
      transfer.update(got, total);
      yield chunk;
    }
  } finally {
    transfer.done();
  }
}
