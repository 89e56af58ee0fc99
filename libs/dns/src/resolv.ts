// resolv.conf: the parser, and a watcher that follows a VPN client rewriting the file in place or
// replacing it by rename (fs.watch on the file and on its directory, plus a slow poll, debounced).
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseResolvConf, type ResolvConf } from '@knet/podgw';
import type { Logger } from '@knet/runtime';

export { ipv4Nameservers, parseResolvConf, type ResolvConf } from '@knet/podgw';

export interface ResolvConfWatcherOptions {
  path: string;
  /** Called after the file's content changed (not for the first read). */
  onChange: (conf: ResolvConf, text: string) => void;
  logger?: Logger;
  /** Quiet time after the last file event before re-reading (default 200 ms). */
  debounceMs?: number;
  /** Poll interval, for changes inotify cannot see (bind mounts, other mount namespaces); default 5 s. */
  pollMs?: number;
}

/**
 * Follows a resolv.conf: re-reads it after events on the file (in-place writes) or its directory
 * (rename over it), and every `pollMs` anyway; calls `onChange` when the text differs from the
 * last read. A missing or unreadable file keeps the last configuration.
 */
export class ResolvConfWatcher {
  private text: string | undefined;
  private conf: ResolvConf = { nameservers: [], search: [], options: [] };
  private dirWatcher: FSWatcher | undefined;
  private fileWatcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private running = false;
  private readFailed = false;
  private watchedIno = -1;

  constructor(private readonly opts: ResolvConfWatcherOptions) {}

  /** The configuration of the last successful read. */
  get current(): ResolvConf {
    return this.conf;
  }

  /** Reads the file (throws if it cannot) and starts watching; returns the configuration. */
  start(): ResolvConf {
    if (this.running) return this.conf;
    this.text = readFileSync(this.opts.path, 'utf8');
    this.conf = parseResolvConf(this.text);
    this.running = true;
    const name = basename(this.opts.path);
    try {
      this.dirWatcher = watch(dirname(this.opts.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.schedule();
      });
      this.dirWatcher.on('error', (err) => this.watchFailed('directory', err));
    } catch (err) {
      this.watchFailed('directory', err);
    }
    this.watchFile();
    this.pollTimer = setInterval(() => this.check(), this.opts.pollMs ?? 5000);
    this.pollTimer.unref();
    return this.conf;
  }

  stop(): void {
    this.running = false;
    this.dirWatcher?.close();
    this.fileWatcher?.close();
    this.dirWatcher = this.fileWatcher = undefined;
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
  }

  /** Re-reads now; calls onChange if the content changed. Returns whether it did. */
  check(): boolean {
    if (!this.running) return false;
    let text: string;
    try {
      text = readFileSync(this.opts.path, 'utf8');
    } catch (err) {
      if (!this.readFailed) {
        this.opts.logger?.warn(
          { path: this.opts.path, err: String(err) },
          'cannot read resolv.conf; keeping the last one',
        );
      }
      this.readFailed = true;
      return false;
    }
    this.readFailed = false;
    this.watchFile(); // a rename put a new inode in place: the file watch must follow it
    if (text === this.text) return false;
    this.text = text;
    this.conf = parseResolvConf(text);
    this.opts.onChange(this.conf, text);
    return true;
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => this.check(), this.opts.debounceMs ?? 200);
    this.debounceTimer.unref();
  }

  /** Watches the file's current inode (again, if it was replaced). */
  private watchFile(): void {
    let ino: number;
    try {
      ino = statSync(this.opts.path).ino;
    } catch {
      return; // missing just now (mid-rename); the next check or poll sets it up again
    }
    if (this.fileWatcher && ino === this.watchedIno) return;
    this.fileWatcher?.close();
    this.fileWatcher = undefined;
    this.watchedIno = ino;
    try {
      this.fileWatcher = watch(this.opts.path, { persistent: false }, () => this.schedule());
      this.fileWatcher.on('error', () => {
        this.fileWatcher?.close();
        this.fileWatcher = undefined;
      });
    } catch {
      this.fileWatcher = undefined;
    }
  }

  private watchFailed(what: string, err: unknown): void {
    this.opts.logger?.debug(
      { path: this.opts.path, err: String(err) },
      `resolv.conf ${what} watch failed; polling only`,
    );
  }
}
