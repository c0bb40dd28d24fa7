// Child processes of the orchestrator: a server host and a client host per row, talking over
// IPC (see ipc-child.mjs). Every child is killed when the orchestrator exits, however it exits.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const live = new Set();
let started = 0;

/** Kills every child still running (SIGKILL: a row stuck in a busy loop gets no say). */
export function killAll() {
  for (const host of [...live]) host.kill();
}

/** Resolves when every child has exited, or after `timeoutMs`. */
export async function allExited(timeoutMs) {
  const end = performance.now() + timeoutMs;
  while (live.size && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
}

export class Host {
  /**
   * Starts `bench/lib/<kind>-host.mjs <row>` and resolves once it reported {type: 'ready'}.
   * `onStderr(line)` receives the child's stderr, line by line.
   */
  static start(kind, row, { cwd, timeoutMs = 30_000, onStderr, execArgv = [] } = {}) {
    const host = new Host(kind, row, cwd, onStderr, execArgv);
    return host.ready(timeoutMs);
  }

  constructor(kind, row, cwd, onStderr, execArgv) {
    this.kind = kind;
    this.row = row;
    this.name = `${row} ${kind}`;
    this.pending = new Map();
    this.nextId = 1;
    this.events = [];
    this.eventWaiters = new Set();
    this.stderrTail = [];
    this.exited = false;
    const seq = ++started;
    this.child = fork(fileURLToPath(new URL(`./${kind}-host.mjs`, import.meta.url)), [row], {
      cwd,
      // '{name}' in an option (the CPU profile's file name) becomes "<row>.<kind>.<n>".
      execArgv: ['--expose-gc', ...execArgv.map((a) => a.replace('{name}', `${row}.${kind}.${seq}`))],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    live.add(this);
    let partial = '';
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
        onStderr?.(`[${this.name}] ${line}`);
      }
    });
    this.child.on('message', (msg) => this.onMessage(msg));
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      live.delete(this);
      const why = new Error(`${this.name} process exited (${signal ?? `code ${code}`})${this.tail()}`);
      for (const p of this.pending.values()) p.reject(why);
      this.pending.clear();
      this.readyReject?.(why);
    });
  }

  tail() {
    const lines = this.stderrTail.filter((l) => l.trim()).slice(-3);
    return lines.length ? `: ${lines.join(' | ').slice(0, 300)}` : '';
  }

  ready(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new Error(`${this.name} did not start within ${timeoutMs} ms${this.tail()}`));
      }, timeoutMs);
      this.readyResolve = (msg) => {
        clearTimeout(timer);
        this.port = msg.port;
        resolve(this);
      };
      this.readyReject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
  }

  onMessage(msg) {
    if (msg?.type === 'ready') {
      this.readyResolve?.(msg);
      this.readyResolve = this.readyReject = undefined;
      return;
    }
    if (msg?.type) {
      this.events.push(msg);
      for (const w of [...this.eventWaiters]) w(msg);
      return;
    }
    const p = this.pending.get(msg?.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(msg.error));
  }

  /** Sends a command; rejects after `timeoutMs` (the caller then kills the host). */
  request(cmd, args = {}, timeoutMs = 60_000) {
    if (this.exited) return Promise.reject(new Error(`${this.name} process is not running${this.tail()}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error(`${this.name}: '${cmd}' timed out after ${(timeoutMs / 1000).toFixed(0)} s`), { timeout: true, timeoutMs }));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, cmd, args });
    });
  }

  /** Resolves with the first event (past or future) matching `pred`, or undefined after `timeoutMs`. */
  waitEvent(pred, timeoutMs) {
    const past = this.events.find(pred);
    if (past) return Promise.resolve(past);
    return new Promise((resolve) => {
      const done = (v) => {
        clearTimeout(timer);
        this.eventWaiters.delete(w);
        resolve(v);
      };
      const w = (msg) => {
        if (pred(msg)) done(msg);
      };
      const timer = setTimeout(() => done(undefined), Math.max(0, timeoutMs));
      this.eventWaiters.add(w);
    });
  }

  /** Asks the child to exit (it then writes its CPU profile, if any); SIGKILL after `graceMs`. */
  stop(graceMs = 2000) {
    if (this.exited) return;
    try {
      this.child.send({ id: 0, cmd: 'exit', args: {} });
    } catch {
      this.kill();
      return;
    }
    const timer = setTimeout(() => this.kill(), graceMs);
    this.child.once('exit', () => clearTimeout(timer));
  }

  kill() {
    live.delete(this);
    if (!this.exited) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
