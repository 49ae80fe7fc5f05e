/**
 * CPU time of another process, read from outside: `/proc/<pid>/stat` utime + stime (fields 14 and
 * 15, in clock ticks) cover every thread of the process, living or exited; `/proc/<pid>/task/<pid>/stat`
 * is its main thread alone. Linux only; the tick is `getconf CLK_TCK` (100 Hz here: 10 ms).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let tickMs: number | undefined;

/** Milliseconds per clock tick. */
export function clockTickMs(): number {
  tickMs ??= 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return tickMs;
}

/** utime + stime in ms from a stat line. The command name (field 2) may hold spaces: skip past its ')'. */
export function parseStatCpuMs(stat: string, msPerTick: number): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) * msPerTick;
}

export interface ProcCpu {
  /** The whole process, ms. */
  processMs: number;
  /** Its main thread (the event loop), ms. */
  mainMs: number;
}

export function readProcCpu(pid: number, msPerTick: number): ProcCpu {
  return {
    processMs: parseStatCpuMs(readFileSync(`/proc/${pid}/stat`, 'latin1'), msPerTick),
    mainMs: parseStatCpuMs(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'latin1'), msPerTick),
  };
}
