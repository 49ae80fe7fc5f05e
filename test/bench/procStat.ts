/**
 * CPU time of another process, read from outside: `/proc/<pid>/stat` utime + stime (fields 14 and
 * 15, in clock ticks) cover every thread of the process, living or exited; `/proc/<pid>/task/<pid>/stat`
 * is its main thread alone. Linux only; the tick is `getconf CLK_TCK` (100 Hz here: 10 ms).
 *
 * The broker is read as a process tree (the process and its descendants, from
 * `/proc/<pid>/task/<tid>/children`), so that a broker running several worker processes is
 * counted whole; a process that exits inside a window takes its CPU with it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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
  /** The whole process (every process of the tree), ms. */
  processMs: number;
  /** Its main thread (the main threads of the tree's processes: their event loops), ms. */
  mainMs: number;
  /** How many processes were read. */
  processes: number;
}

/** The pids of `pid` and its descendants that are alive now. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number) => {
    out.push(p);
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      return; // gone meanwhile
    }
    for (const tid of tids) {
      let children = '';
      try {
        children = readFileSync(`/proc/${p}/task/${tid}/children`, 'latin1');
      } catch {
        /* thread gone */
      }
      for (const c of children.split(' ')) if (c) visit(Number(c));
    }
  };
  visit(pid);
  return out;
}

export function readProcCpu(pid: number, msPerTick: number): ProcCpu {
  let processMs = 0;
  let mainMs = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    try {
      const whole = parseStatCpuMs(readFileSync(`/proc/${p}/stat`, 'latin1'), msPerTick);
      const main = parseStatCpuMs(readFileSync(`/proc/${p}/task/${p}/stat`, 'latin1'), msPerTick);
      processMs += whole;
      mainMs += main;
      processes++;
    } catch {
      /* exited between the listing and the read */
    }
  }
  return { processMs, mainMs, processes };
}
