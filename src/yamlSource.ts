import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node } from 'yaml';

export interface SourcePosition {
  line: number;
  col: number;
}

/** A parsed YAML (or JSON) document that can say where a path in it sits in the text. */
export interface YamlSource {
  value: unknown;
  /**
   * Position of the node at `path`, or of its nearest existing ancestor. With `atKey`, the
   * position of the last segment's key rather than its value (where an unknown key is reported).
   */
  locate(path: ReadonlyArray<PropertyKey>, opts?: { atKey?: boolean }): SourcePosition;
  /** Syntax errors, already located. */
  errors: Array<{ message: string; pos: SourcePosition }>;
}

/** Locates paths in a YAML text, without building its value (no alias is expanded). */
export function yamlLocator(text: string): Pick<YamlSource, 'locate' | 'errors'> & { doc: ReturnType<typeof parseDocument> } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const pos = (offset: number): SourcePosition => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, col: p.col };
  };
  const errors = doc.errors.map((e) => ({ message: e.message.split('\n')[0] ?? e.message, pos: pos(e.pos[0]) }));
  const locate = (path: ReadonlyArray<PropertyKey>, opts: { atKey?: boolean } = {}): SourcePosition => {
    let node: Node | null | undefined = doc.contents as Node | null;
    let best = node?.range ? pos(node.range[0]) : { line: 1, col: 1 };
    for (const [i, seg] of path.entries()) {
      if (isMap(node)) {
        const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(seg));
        if (!pair) break;
        const keyNode = pair.key as Node;
        if (keyNode.range) best = pos(keyNode.range[0]);
        if (opts.atKey && i === path.length - 1) break;
        node = pair.value as Node | null;
        if (node?.range) best = pos(node.range[0]);
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg] as Node | undefined;
        if (!item) break;
        node = item;
        if (item.range) best = pos(item.range[0]);
      } else break;
    }
    return best;
  };
  return { doc, locate, errors };
}

export function parseYamlSource(text: string): YamlSource {
  const { doc, locate, errors } = yamlLocator(text);
  if (errors.length) return { value: undefined, locate, errors };
  try {
    return { value: doc.toJS({ maxAliasCount: 50 }), locate, errors };
  } catch (e) {
    // An alias bomb ("Excessive alias count …") is a problem of the input, not a crash.
    return { value: undefined, locate, errors: [{ message: (e as Error).message, pos: { line: 1, col: 1 } }] };
  }
}

/** Renders a zod-style path the way the policy errors print it: `software[1].keys[0]`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out || '(root)';
}
