/**
 * A global cap on attestations being decided at once in this process (SPIRE's users ask for one):
 * past it, an attestation is refused at once with `503 overloaded` and `Retry-After`, before any
 * of its evidence is read, so a flood costs the broker a counter, not CPU or store work. Each
 * worker process and each replica has its own cap.
 */
import { BrokerError } from '../errors.js';

export class InFlight {
  #n = 0;

  constructor(
    readonly max: number,
    private readonly retryAfterSeconds = 1,
  ) {}

  /** Takes a slot, or throws `overloaded`; the function returned gives it back (call it once). */
  enter(): () => void {
    if (this.#n >= this.max) throw new BrokerError('overloaded', `${this.#n} attestations in flight (server.maxAttestationsInFlight ${this.max})`, { retryAfterSeconds: this.retryAfterSeconds });
    this.#n++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#n--;
    };
  }

  get count(): number {
    return this.#n;
  }
}
