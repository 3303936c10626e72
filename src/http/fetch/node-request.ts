/**
 * The Node request behind a Request made by `@hono/node-server`, so that a hit reads its headers
 * where Node already parsed them. That server hands the app a lightweight Request that keeps the
 * `IncomingMessage` and builds `request.headers` only when it is read; reading the dozen headers
 * a key needs through it costs a header object per request that a bare route never pays.
 *
 * The server does not export the symbols it keeps them under, so they are found once per
 * request prototype, by looking, and anything that does not look exactly as expected (another
 * server, another version, HTTP/2) gets `undefined`: the caller then reads `request.headers` as
 * for any Web-standard server. Never a guess: a request whose `headers` was read before may have
 * had them changed (`request.headers.set(...)` in a wrapping handler), so it is refused too.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/** Where one request prototype keeps its `IncomingMessage`, and what `request.headers` caches. */
interface Slots {
  readonly incoming: symbol;
  /** Set on a request once its `headers` has been read. */
  readonly headers: symbol;
}

/** Per request prototype: its slots, or `null` when its requests are not `@hono/node-server`'s. */
const layouts = new WeakMap<object, Slots | null>();

type Slotted = Record<symbol, unknown>;

/**
 * The Node headers behind `request` when they are exactly what `request.headers` would give for
 * every header the dumper reads, else `undefined`.
 */
export function nodeHeadersOf(request: Request): IncomingHttpHeaders | undefined {
  const slots = slotsOf(request);
  if (slots === undefined) return undefined;
  const r = request as unknown as Slotted;
  if (r[slots.headers] !== undefined) return undefined;
  const incoming = r[slots.incoming] as IncomingMessage | undefined;
  // HTTP/2 requests carry pseudo-headers and an :authority instead of Host: left to the general path.
  if (incoming === undefined || incoming.httpVersionMajor !== 1) return undefined;
  return singleValued(incoming.rawHeaders) ? incoming.headers : undefined;
}

/** The Node request behind a Request made by `@hono/node-server`, if `request` is one. */
export function incomingOf(request: Request): IncomingMessage | undefined {
  const slots = slotsOf(request);
  return slots === undefined ? undefined : ((request as unknown as Slotted)[slots.incoming] as IncomingMessage | undefined);
}

/** Where requests of `request`'s prototype keep their Node request, found at the first one. */
function slotsOf(request: Request): Slots | undefined {
  const proto: unknown = Object.getPrototypeOf(request);
  if (typeof proto !== 'object' || proto === null) return undefined;
  let slots = layouts.get(proto);
  if (slots === undefined) {
    slots = discover(request);
    if (slots === undefined) return undefined;
    layouts.set(proto, slots);
  }
  return slots ?? undefined;
}

/**
 * Node keeps the first of repeated `Host` and `If-Modified-Since` headers where `Headers` joins
 * them: such a request takes the general path, so a second Host still makes it bypass as a bad
 * host (the app, reading `Host`, would see both).
 */
function singleValued(raw: readonly string[]): boolean {
  let host = false;
  let ims = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4) {
      if (name === 'Host' || name === 'host' || name.toLowerCase() === 'host') {
        if (host) return false;
        host = true;
      }
    } else if (name.length === 17 && name.toLowerCase() === 'if-modified-since') {
      if (ims) return false;
      ims = true;
    }
  }
  return true;
}

/**
 * Finds the slots on the first request of a prototype: the own symbol named `incomingKey` that
 * holds a Node request, and the own symbol that reading `request.headers` fills, with the headers
 * themselves (@hono/node-server 2) or with the full Request they belong to (version 1).
 * `undefined` when this request cannot tell (its headers do not parse): the next one is asked.
 */
function discover(request: Request): Slots | null | undefined {
  const r = request as unknown as Slotted;
  let incoming: symbol | undefined;
  for (const s of Object.getOwnPropertySymbols(request)) {
    if (s.description === 'incomingKey' && isNodeRequest(r[s])) incoming = s;
  }
  if (incoming === undefined) return null;
  let headers: Headers;
  try {
    headers = request.headers;
    // Reading it again must give the same object: the headers are cached, not made per read.
    if (request.headers !== headers) return null;
  } catch {
    return undefined;
  }
  const own = Object.getOwnPropertySymbols(request);
  let slot = own.find((s) => r[s] === headers);
  slot ??= own.find((s) => {
    const v = r[s];
    return typeof v === 'object' && v !== null && (v as { headers?: unknown }).headers === headers;
  });
  return slot === undefined ? null : { incoming, headers: slot };
}

function isNodeRequest(value: unknown): value is IncomingMessage {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<IncomingMessage>;
  return Array.isArray(v.rawHeaders) && typeof v.headers === 'object' && v.headers !== null && typeof v.httpVersionMajor === 'number';
}
