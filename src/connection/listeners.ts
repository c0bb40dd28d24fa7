/** A map of event names to listener signatures. */
export type EventMap = { [event: string]: (...args: never[]) => void };

/**
 * Typed listener lists with one rule: a listener that throws never disturbs the code that fired
 * the event, nor the other listeners; what it threw goes to `onListenerError`.
 */
export class Listeners<E extends EventMap> {
  private readonly lists = new Map<keyof E, E[keyof E][]>();

  constructor(private readonly onListenerError: (error: unknown, event: keyof E) => void) {}

  /** Adds a listener. */
  on<K extends keyof E>(event: K, listener: E[K]): void {
    const list = this.lists.get(event);
    if (list) list.push(listener);
    else this.lists.set(event, [listener]);
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof E>(event: K, listener: E[K]): void {
    const list = this.lists.get(event);
    const i = list?.indexOf(listener) ?? -1;
    if (i >= 0) list!.splice(i, 1);
  }

  /** Listeners of `event`. */
  count(event: keyof E): number {
    return this.lists.get(event)?.length ?? 0;
  }

  /** Calls every listener of `event` with `args`; returns false when there was none. */
  emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): boolean {
    const list = this.lists.get(event);
    if (!list || list.length === 0) return false;
    for (const listener of [...list]) {
      try {
        (listener as (...a: Parameters<E[K]>) => void)(...args);
      } catch (e) {
        this.onListenerError(e, event);
      }
    }
    return true;
  }
}

/** Throws `error` outside the current call stack, as an uncaught exception of the application. */
export function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/**
 * Listener lists with an `'error'` event that is never lost: {@link report} emits it, or, with
 * no `'error'` listener, hands it to `log`. A listener that throws is reported the same way (an
 * `'error'` listener that throws goes to `log`, so reporting cannot loop).
 */
export class ReportingListeners<E extends EventMap & { error: (error: Error) => void }> extends Listeners<E> {
  constructor(private readonly log: (message: string, stack?: string) => void) {
    super((e, event) => {
      const err = e instanceof Error ? e : new Error(String(e));
      if (event === 'error') this.log(`an 'error' listener threw: ${err.message}`, err.stack);
      else this.report(new Error(`a '${String(event)}' listener threw: ${err.message}`, { cause: e }));
    });
  }

  /** Emits `'error'`, or logs when nobody listens. */
  report(error: Error): void {
    if (!this.emit('error', ...([error] as unknown as Parameters<E['error']>))) this.log(error.message, error.stack);
  }
}
