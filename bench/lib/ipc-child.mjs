// The child side of the orchestrator's IPC: requests {id, cmd, args} answered with
// {id, ok, result} or {id, ok: false, error}. The child exits when the parent disconnects.
export function serveIpc(handlers) {
  process.on('message', async (msg) => {
    if (!msg || msg.id === undefined) return;
    if (msg.cmd === 'exit') process.exit(0);
    const handler = handlers[msg.cmd];
    try {
      if (!handler) throw new Error(`unknown command ${msg.cmd}`);
      const result = await handler(msg.args ?? {});
      process.send?.({ id: msg.id, ok: true, result });
    } catch (e) {
      process.send?.({ id: msg.id, ok: false, error: e instanceof Error ? e.message : String(e) });
    }
  });
  process.on('disconnect', () => process.exit(0));
  // A stray rejection in a row must not take the host down silently: report and go on.
  process.on('unhandledRejection', (e) => {
    const kind = /([a-z]+)-host\.mjs$/.exec(process.argv[1])?.[1] ?? 'child'; // server, client, replica, peers
    process.stderr.write(`[${process.argv[2]} ${kind}] unhandled rejection: ${e?.stack ?? e}\n`);
  });
}
