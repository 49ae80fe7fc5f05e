/**
 * The part of zod's API that src/protocol.ts and the agent's own schemas use, for the agent's
 * bundle only: build.mjs points the bundle's `zod` imports here, so the one source of the wire
 * types (src/protocol.ts, which the broker runs on zod itself) is what the agent checks against,
 * at a fraction of zod's start-up (zod's module and schema set-up took ≈ 30 of the ≈ 55 ms the
 * bundle took to load: docs/benchmarks.md). Type-checking still uses zod's types.
 *
 * Same outcomes as zod 4 for these declarations — `test/unit/agent/zodLite.test.ts` runs
 * protocol.ts on both over valid and broken inputs and compares success and output — though not
 * the same issue messages: strings (length, pattern), numbers (finite; int is a safe integer;
 * positive, nonnegative, bounds), literals, enums, arrays (length), objects (unknown keys refused
 * by `strictObject`, dropped by `object`; optional and defaulted members), discriminated unions,
 * records, refinements (run once the value passed everything else).
 */
export interface Issue {
  path: PropertyKey[];
  message: string;
}

export type SafeParse<T> = { success: true; data: T } | { success: false; error: { issues: Issue[] } };

type Run<T> = (value: unknown, path: PropertyKey[], issues: Issue[]) => T;

export class Schema<T = unknown> {
  constructor(
    protected readonly run: Run<T>,
    /** For object members: may be absent; `fill` makes the value of an absent one (a default). */
    readonly absent: { ok: boolean; fill?: () => unknown } = { ok: false },
  ) {}

  /** @internal runs the schema, recording issues; what it returns is meaningful only without new issues. */
  _run(value: unknown, path: PropertyKey[], issues: Issue[]): T {
    if (value === undefined && this.absent.ok) return (this.absent.fill ? this.absent.fill() : undefined) as T;
    return this.run(value, path, issues);
  }

  safeParse(value: unknown): SafeParse<T> {
    const issues: Issue[] = [];
    const data = this._run(value, [], issues);
    return issues.length ? { success: false, error: { issues } } : { success: true, data };
  }

  parse(value: unknown): T {
    const r = this.safeParse(value);
    if (!r.success) throw new SchemaError(r.error.issues);
    return r.data;
  }

  optional(): Schema<T | undefined> {
    return new Schema(this.run, { ok: true });
  }

  default(value: T): Schema<T> {
    return new Schema(this.run, { ok: true, fill: () => (Array.isArray(value) ? [...value] : value) });
  }

  refine(ok: (v: T) => boolean, message = 'Invalid input'): Schema<T> {
    return new Schema((v, path, issues) => {
      const before = issues.length;
      const out = this.run(v, path, issues);
      if (issues.length === before && !ok(out)) issues.push({ path, message });
      return out;
    }, this.absent);
  }
}

export class SchemaError extends Error {
  constructor(readonly issues: Issue[]) {
    super(issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; '));
    this.name = 'ZodError';
  }
}

type Check<T> = (v: T) => string | undefined;

/** A scalar schema with checks that can be chained (`.min(1).max(5)`). */
class Checked<T> extends Schema<T> {
  constructor(
    private readonly type: (v: unknown) => v is T,
    private readonly expected: string,
    private readonly checks: ReadonlyArray<Check<T>> = [],
  ) {
    super((v, path, issues) => {
      if (!type(v)) {
        issues.push({ path, message: `expected ${expected}` });
        return v as T;
      }
      for (const c of checks) {
        const why = c(v);
        if (why) issues.push({ path, message: why });
      }
      return v;
    });
  }
  protected with(check: Check<T>): this {
    return new (this.constructor as new (t: (v: unknown) => v is T, e: string, c: ReadonlyArray<Check<T>>) => this)(this.type, this.expected, [...this.checks, check]);
  }
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

class StringSchema extends Checked<string> {
  constructor(t = isString, e = 'string', c: ReadonlyArray<Check<string>> = []) {
    super(t, e, c);
  }
  min(n: number, message?: string) {
    return this.with((s) => (s.length >= n ? undefined : message ?? `at least ${n} characters`));
  }
  max(n: number, message?: string) {
    return this.with((s) => (s.length <= n ? undefined : message ?? `at most ${n} characters`));
  }
  regex(re: RegExp, message?: string) {
    return this.with((s) => {
      re.lastIndex = 0;
      return re.test(s) ? undefined : message ?? `must match ${re}`;
    });
  }
}

class NumberSchema extends Checked<number> {
  constructor(t = isNumber, e = 'a finite number', c: ReadonlyArray<Check<number>> = []) {
    super(t, e, c);
  }
  int() {
    return this.with((n) => (Number.isSafeInteger(n) ? undefined : 'expected an integer'));
  }
  positive() {
    return this.with((n) => (n > 0 ? undefined : 'expected > 0'));
  }
  nonnegative() {
    return this.with((n) => (n >= 0 ? undefined : 'expected ≥ 0'));
  }
  min(m: number) {
    return this.with((n) => (n >= m ? undefined : `expected ≥ ${m}`));
  }
  max(m: number) {
    return this.with((n) => (n <= m ? undefined : `expected ≤ ${m}`));
  }
}

class ArraySchema<T> extends Schema<T[]> {
  constructor(
    private readonly item: Schema<T>,
    private readonly bounds: { min?: number; max?: number } = {},
  ) {
    super((v, path, issues) => {
      if (!Array.isArray(v)) {
        issues.push({ path, message: 'expected an array' });
        return v as T[];
      }
      if (bounds.min !== undefined && v.length < bounds.min) issues.push({ path, message: `at least ${bounds.min} items` });
      if (bounds.max !== undefined && v.length > bounds.max) issues.push({ path, message: `at most ${bounds.max} items` });
      const out: T[] = [];
      for (let i = 0; i < v.length; i++) out.push(item._run(v[i], [...path, i], issues)); // holes too, as zod
      return out;
    });
  }
  min(n: number) {
    return new ArraySchema(this.item, { ...this.bounds, min: n });
  }
  max(n: number) {
    return new ArraySchema(this.item, { ...this.bounds, max: n });
  }
}

type Shape = Record<string, Schema>;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

class ObjectSchema extends Schema<Record<string, unknown>> {
  constructor(
    readonly shape: Shape,
    strict: boolean,
  ) {
    super((v, path, issues) => {
      if (!isObject(v)) {
        issues.push({ path, message: 'expected an object' });
        return {};
      }
      const out: Record<string, unknown> = {};
      for (const [key, schema] of Object.entries(shape)) {
        const present = Object.hasOwn(v, key);
        const value = schema._run(present ? v[key] : undefined, [...path, key], issues);
        if (present || value !== undefined) out[key] = value;
      }
      if (strict) {
        const unknown = Object.keys(v).filter((k) => !Object.hasOwn(shape, k));
        if (unknown.length) issues.push({ path, message: `unrecognized keys: ${unknown.join(', ')}` });
      }
      return out;
    });
  }
}

export const z = {
  string: () => new StringSchema(),
  number: () => new NumberSchema(),
  literal: <T>(value: T) =>
    new Schema<T>((v, path, issues) => {
      if (v !== value) issues.push({ path, message: `expected ${JSON.stringify(value)}` });
      return v as T;
    }),
  enum: <T extends string>(values: readonly T[]) =>
    new Schema<T>((v, path, issues) => {
      if (!values.includes(v as T)) issues.push({ path, message: `expected one of ${values.join(', ')}` });
      return v as T;
    }),
  array: <T>(item: Schema<T>) => new ArraySchema(item),
  object: (shape: Shape) => new ObjectSchema(shape, false),
  strictObject: (shape: Shape) => new ObjectSchema(shape, true),
  record: <V>(key: Schema<string>, value: Schema<V>) =>
    new Schema<Record<string, V>>((v, path, issues) => {
      if (!isObject(v)) {
        issues.push({ path, message: 'expected an object' });
        return {};
      }
      const out: Record<string, V> = {};
      for (const [k, x] of Object.entries(v)) {
        key._run(k, [...path, k], issues);
        out[k] = value._run(x, [...path, k], issues);
      }
      return out;
    }),
  discriminatedUnion: (key: string, options: ObjectSchema[]) =>
    new Schema<Record<string, unknown>>((v, path, issues) => {
      if (!isObject(v)) {
        issues.push({ path, message: 'expected an object' });
        return {};
      }
      const option = options.find((o) => o.shape[key]!.safeParse(v[key]).success);
      if (!option) {
        issues.push({ path: [...path, key], message: `no option for ${key} ${JSON.stringify(v[key])}` });
        return v;
      }
      return option._run(v, path, issues);
    }),
};

export default z;
