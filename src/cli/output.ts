/**
 * `-o json|text` for every command that prints data: JSON for scripts (one document, stable field
 * names), text for people. A command declares the option with `withOutput` and prints with `emit`,
 * giving the text form as a function of the same data, so the two never disagree.
 */
import { Option, type Command } from 'commander';

export type OutputFormat = 'text' | 'json';

export function withOutput(cmd: Command, defaultFormat: OutputFormat = 'text'): Command {
  return cmd.addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default(defaultFormat));
}

export function outputFormat(cmd: Command): OutputFormat {
  return (cmd.opts() as { output?: OutputFormat }).output ?? 'text';
}

/** The data as `-o` asks: pretty JSON, or `text(data)`. Always ends with a newline. */
export function render<T>(format: OutputFormat, data: T, text: (data: T) => string): string {
  const out = format === 'json' ? JSON.stringify(data, null, 2) : text(data);
  return out.endsWith('\n') ? out : `${out}\n`;
}

export function emit<T>(cmd: Command, data: T, text: (data: T) => string, write: (s: string) => void = (s) => process.stdout.write(s)): void {
  write(render(outputFormat(cmd), data, text));
}
