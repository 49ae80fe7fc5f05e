/**
 * Preloaded into the benchmarked broker (`node --import …/brokerProbe.js dist/src/cli/main.js serve`),
 * so that the broker's own event loop can be observed without a hook in src/: answers the bench
 * over the IPC channel it was spawned with.
 *
 *   { probe: 'eld-reset' }                     →  { probe: 'ok' }: a new event-loop delay window
 *   { probe: 'eld-read' }                      →  { probe: 'eld', p50, p99, max } (ms)
 *   { probe: 'profile-start', intervalUs }     →  { probe: 'ok' }: V8's CPU profiler on (what `node --cpu-prof` runs)
 *   { probe: 'profile-stop', file }            →  { probe: 'ok' } once the profile is written to `file`
 *
 * The delay monitor's timer fires every 5 ms (a few µs of CPU each, counted in the broker's CPU).
 * When the channel closes (the bench died), the broker is sent SIGTERM: no orphan keeps running.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export type ProbeRequest =
  | { probe: 'eld-reset' }
  | { probe: 'eld-read' }
  | { probe: 'profile-start'; intervalUs: number }
  | { probe: 'profile-stop'; file: string };

export type ProbeAnswer =
  | { probe: 'ok' }
  | { probe: 'eld'; p50: number; p99: number; max: number }
  | { probe: 'error'; message: string };

const ELD_RESOLUTION_MS = 5;

// A worker of `serve --workers` inherits the preload; its channel is the primary's, not the bench's.
if (process.send && !process.argv.includes('--worker')) {
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eld.enable();
  let session: Session | undefined;
  const answer = (a: ProbeAnswer) => process.send!(a);
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));

  const handle = async (m: ProbeRequest): Promise<void> => {
    switch (m.probe) {
      case 'eld-reset':
        eld.reset();
        answer({ probe: 'ok' });
        return;
      case 'eld-read':
        answer({ probe: 'eld', p50: eld.percentile(50) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 });
        return;
      case 'profile-start':
        session = new Session();
        session.connect();
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: m.intervalUs });
        await post('Profiler.start');
        answer({ probe: 'ok' });
        return;
      case 'profile-stop': {
        const { profile } = (await post('Profiler.stop')) as { profile: unknown };
        session!.disconnect();
        session = undefined;
        writeFileSync(m.file, JSON.stringify(profile));
        answer({ probe: 'ok' });
      }
    }
  };
  process.on('message', (m: ProbeRequest) => {
    handle(m).catch((e: unknown) => answer({ probe: 'error', message: String(e) }));
  });
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
