/**
 * Two ends of an in-process message channel that behaves like a child process's IPC (server/workers.ts) for the store's
 * remote protocol: each message goes through v8.serialize and back (what the `advanced`
 * serialization does; Buffers stay Buffers) and is delivered in a later turn of the event loop,
 * never synchronously. Not a mock of the store: the real
 * protocol (src/store/remote/) runs over it; only the pipe between two processes is left out.
 */
import { deserialize, serialize } from 'node:v8';
import type { Channel } from '../../src/store/remote/protocol.js';

export function channelPair(): [Channel, Channel] {
  const listeners: [Set<(m: unknown) => void>, Set<(m: unknown) => void>] = [new Set(), new Set()];
  const end = (mine: 0 | 1): Channel => ({
    send: (m) => {
      const copy: unknown = deserialize(serialize(m));
      setImmediate(() => {
        for (const l of listeners[1 - mine]!) l(copy);
      });
    },
    onMessage: (fn) => {
      listeners[mine].add(fn);
      return () => listeners[mine].delete(fn);
    },
  });
  return [end(0), end(1)];
}
