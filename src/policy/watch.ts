/**
 * Reloads when the policy directory changes: a recursive watch, debounced so that a `git pull` or
 * an editor's save (several writes) makes one reload after things are quiet. Hidden files (editor
 * swap files, .git) are ignored. Material outside the directory (`${stateDir}/…`) is not watched:
 * SIGHUP or the admin API reload after changing it.
 */
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import type { Logger } from '../log.js';

export interface Watch {
  close(): void;
}

export function watchPolicyDir(dir: string, debounceMs: number, onChange: () => void, log: Logger): Watch | undefined {
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher;
  try {
    watcher = fsWatch(dir, { recursive: true, persistent: false }, (_event, name) => {
      if (name && String(name).split('/').some((seg) => seg.startsWith('.'))) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
      timer.unref();
    });
  } catch (e) {
    log.warn({ policyDir: dir, err: (e as Error).message }, 'cannot watch the policy directory; reload with SIGHUP or the admin API');
    return undefined;
  }
  watcher.on('error', (e) => log.warn({ policyDir: dir, err: e.message }, 'watching the policy directory failed; reload with SIGHUP or the admin API'));
  return {
    close: () => {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
