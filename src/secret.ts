import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/** Holds a secret string (PIN, password) so that logging, JSON and inspect never show it. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return REDACTED;
  }
  toString(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}
