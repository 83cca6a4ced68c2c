/**
 * The linearizability search for the history of ONE key of a key-value register.
 *
 * Algorithm: Wing & Gong's search ("Testing and verifying concurrent objects", 1993) with Lowe's
 * improvements ("Testing for linearizability", 2017) as used by Porcupine and Knossos: the required
 * operations' invoke ("call") and completion ("return") entries form one list in history order; at
 * each configuration the candidates are the calls before the first return entry (an operation
 * invoked after some pending operation completed cannot go before it); the search linearizes a
 * legal candidate, lifts its entries out of the list, and goes on; when no candidate works it
 * backtracks. Configurations — (linearized set, register state) — are memoized, so none is searched
 * twice. Locality (Herlihy & Wing 1990, Theorem 1) lets the caller check each key on its own.
 *
 * Refinements, each a reduction that keeps the search complete (the property tests compare it with
 * a brute-force checker):
 *
 * - OPTIONAL operations (outcome unknown: `info`, or pending at a cut) have no return entry — they
 *   may take effect at any time after their invoke, or never — and success comes when every
 *   REQUIRED operation is linearized.
 * - Subsumption: an optional operation never has to be linearized, so a configuration whose
 *   optional set contains a cached one's (same required set and state) can do nothing more; it is
 *   pruned.
 * - Optional operations only where needed: any linearization can be rearranged so that a run of
 *   optional operations (a write, or a cas, then cas that expect the previous value) starts in state
 *   s only right before a required operation that is illegal in s. So optional operations are tried
 *   only when the required candidates are exhausted, only those whose chain ends in a value a blocked
 *   candidate expects, and inside a run the next operation must be illegal in s (`need`).
 * - Observers first: a required read or failed-cas observation that is legal now can be moved to the
 *   front of any linearization from here (it changes nothing, and nothing pending must precede it),
 *   so it is taken without branching.
 * - Anonymous values: a value no operation expects (no read returned it, no cas names it) cannot be
 *   told from another such value, so all share one state; and optional writes of such values are
 *   interchangeable but for their invoke time, so only the earliest one is ever tried.
 * - Just in time (Lowe §5): the candidate whose return entry comes first is tried first.
 *
 * The search is exponential in the worst case (linearizability checking is NP-complete: Gibbons &
 * Korach 1997); the budget turns a pathological history into 'unknown'.
 */
import type { CasArguments } from './history-event.js';
import type { HistoryOperation } from './history-operation.js';

/** What an operation does to the register, for the search. */
export type RegisterStepKind =
  /** Sets the value (`next`; null = delete). Always legal. */
  | 'write'
  /** Observes `expected`; legal only when the register holds it. */
  | 'read'
  /** Legal only when the register holds `expected`; then sets `next`. */
  | 'cas'
  /** A cas that failed with "mismatch": legal only when the register does NOT hold `expected`. */
  | 'mismatch';

export interface RegisterSearchOperation {
  readonly source: HistoryOperation;
  readonly kind: RegisterStepKind;
  readonly expected: string | null;
  readonly next: string | null;
  /** Position of the invoke event in the history. */
  readonly call: number;
  /** Position of the completion event; +Infinity when the outcome is unknown (optional operation). */
  readonly ret: number;
}

/**
 * Turns a key's operations into search operations, as the history looks when cut after the event
 * at position `cut` (default: the whole history). The rules (docs/history.md):
 * - ok read/write/delete/cas: required, with their own semantics;
 * - fail cas with error "mismatch": required observation that the key did not hold `expected`;
 * - any other fail: it did not happen, dropped;
 * - info write/delete/cas, or one still pending at the cut: optional (may take effect, or never);
 * - info or pending read: it observed nothing, dropped.
 */
export function toSearchOperations(
  operations: readonly HistoryOperation[],
  cut = Number.POSITIVE_INFINITY,
): RegisterSearchOperation[] {
  const result: RegisterSearchOperation[] = [];
  const add = (source: HistoryOperation, kind: RegisterStepKind, expected: string | null, next: string | null, ret: number) => {
    result.push({ source, kind, expected, next, call: source.invokeIndex, ret });
  };
  for (const source of operations) {
    if (source.invokeIndex > cut) continue;
    const outcome = source.completeIndex <= cut ? source.outcome : 'info';
    if (outcome === 'fail') {
      if (source.f === 'cas' && source.error === 'mismatch') {
        add(source, 'mismatch', (source.value as CasArguments)[0], null, source.completeIndex);
      }
      continue;
    }
    const ret = outcome === 'ok' ? source.completeIndex : Number.POSITIVE_INFINITY;
    switch (source.f) {
      case 'read':
        if (outcome === 'ok') add(source, 'read', source.output, null, ret);
        break;
      case 'write':
        add(source, 'write', null, source.value as string, ret);
        break;
      case 'delete':
        add(source, 'write', null, null, ret);
        break;
      case 'cas':
        add(source, 'cas', (source.value as CasArguments)[0], (source.value as CasArguments)[1], ret);
        break;
    }
  }
  return result;
}

/**
 * A search budget shared by one or more searches: a step limit and a wall-clock deadline. A step is
 * one visit of a list entry or a comparable piece of work (0.1 to 0.5 µs).
 */
export class SearchBudget {
  private spent = 0;

  constructor(
    readonly maxSteps: number,
    /** Date.now() after which the search gives up; +Infinity for none. */
    readonly deadlineMs: number = Number.POSITIVE_INFINITY,
  ) {
    if (!(maxSteps > 0)) throw new RangeError(`SearchBudget: maxSteps must be positive, got ${maxSteps}`);
  }

  get stepsSpent(): number {
    return this.spent;
  }

  /** Records `steps` more steps; false once the step limit or the deadline is passed. */
  charge(steps: number): boolean {
    this.spent += steps;
    return this.spent <= this.maxSteps && (this.deadlineMs === Number.POSITIVE_INFINITY || Date.now() <= this.deadlineMs);
  }
}

export type SearchVerdict = 'linearizable' | 'not-linearizable' | 'unknown';

const KIND_WRITE = 0;
const KIND_READ = 1;
const KIND_CAS = 2;
const KIND_MISMATCH = 3;
const KIND_CODES: Record<RegisterStepKind, number> = { write: KIND_WRITE, read: KIND_READ, cas: KIND_CAS, mismatch: KIND_MISMATCH };

/** `need` of a configuration that is not inside a run of optional operations. */
const NO_NEED = -1;
/** The state of an absent key. */
const ABSENT = 0;
/** The state after writing a value that no operation ever expects. */
const ANONYMOUS = 1;

/** How many steps run between two checks of the budget. */
const STEPS_PER_CHARGE = 1024;

const NO_OPERATIONS: readonly number[] = [];

/** murmur3's 32-bit finalizer: spreads an index into a well-mixed hash (Zobrist keys). */
function mix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

interface CacheEntry {
  readonly state: number;
  readonly need: number;
  /** First word of the required-set bitset that is not all ones (all words before it are). */
  readonly low: number;
  /** The words from `low` to the last non-zero word (all words after it are zero), kept in the arena. */
  readonly offset: number;
  readonly width: number;
  /** The optional-set bitset (shared, never mutated); null when no optional operation is linearized. */
  readonly optional: Uint32Array | null;
}

/** One configuration on the search path, and how far its exploration has got. */
interface Frame {
  state: number;
  /** NO_NEED, or the state before the run of optional operations this configuration is in. */
  need: number;
  /** The operation linearized to reach this configuration (-1 at the root). */
  via: number;
  /**
   * 0: about to look for a legal observer; 1: trying required operations in list order; 2: trying
   * the optional candidates; 3: committed to an observer, nothing else to try.
   */
  phase: 0 | 1 | 2 | 3;
  /** Phase 1: the next entry of the required list to look at. */
  node: number;
  /** The operation tried first (the one that must complete first), skipped in phase 1; -1 if none. */
  first: number;
  /** Phase 2: the optional operations worth trying here, and the next one to try. */
  candidates: readonly number[];
  cursor: number;
  /** The optional set of this configuration, as stored in the cache (shared by its entries). */
  optional: Uint32Array | null;
}

function addTo(index: Map<number, number[]>, key: number, op: number): void {
  const list = index.get(key);
  if (list === undefined) index.set(key, [op]);
  else list.push(op);
}

/**
 * Searches for a linearization of one key's operations. Returns 'unknown' when the budget runs out.
 * Throws if the operations are inconsistent (a call not before its return, two entries at one position).
 */
export function searchLinearization(operations: readonly RegisterSearchOperation[], budget: SearchBudget): SearchVerdict {
  const count = operations.length;
  // --- Encode operations: kinds, interned values (state 0 = key absent), bit indices.
  // A value that no operation expects (no read returned it, no cas or mismatch names it) cannot
  // be told from any other such value: all of them share one state, ANONYMOUS.
  const observed = new Set<string | null>();
  for (const operation of operations) if (operation.kind !== 'write') observed.add(operation.expected);
  const valueIds = new Map<string, number>();
  const intern = (value: string | null): number => {
    if (value === null) return ABSENT;
    if (!observed.has(value)) return ANONYMOUS;
    let id = valueIds.get(value);
    if (id === undefined) {
      id = valueIds.size + ANONYMOUS + 1;
      valueIds.set(value, id);
    }
    return id;
  };
  const kind = new Uint8Array(count);
  const expected = new Int32Array(count);
  const next = new Int32Array(count);
  const call = new Float64Array(count);
  const isRequired = new Uint8Array(count);
  const bitIndex = new Int32Array(count);
  let requiredCount = 0;
  const optionalOps: number[] = [];
  for (let op = 0; op < count; op++) {
    const operation = operations[op];
    if (!(operation.call < operation.ret)) {
      throw new Error(`searchLinearization: operation ${operation.source.id} has call ${operation.call} >= return ${operation.ret}`);
    }
    kind[op] = KIND_CODES[operation.kind];
    expected[op] = intern(operation.expected);
    next[op] = intern(operation.next);
    call[op] = operation.call;
    if (operation.ret === Number.POSITIVE_INFINITY) {
      bitIndex[op] = optionalOps.length;
      optionalOps.push(op);
    } else {
      isRequired[op] = 1;
      bitIndex[op] = requiredCount++;
    }
  }
  if (requiredCount === 0) return 'linearizable';
  const optionalCount = optionalOps.length;

  const legal = (op: number, state: number): boolean => {
    switch (kind[op]) {
      case KIND_WRITE:
        return true;
      case KIND_MISMATCH:
        return state !== expected[op];
      default:
        return state === expected[op];
    }
  };
  const apply = (op: number, state: number): number =>
    kind[op] === KIND_WRITE || kind[op] === KIND_CAS ? next[op] : state;

  // --- The required entry list (Lowe §3): call and return entries of required operations in
  // history order. Node 0 is the head sentinel, node entryCount + 1 the tail sentinel.
  const entryCount = 2 * requiredCount;
  const entryPosition = new Float64Array(entryCount);
  const entryOp = new Int32Array(entryCount);
  const entryIsCall = new Uint8Array(entryCount);
  let e = 0;
  for (let op = 0; op < count; op++) {
    if (!isRequired[op]) continue;
    entryPosition[e] = operations[op].call;
    entryOp[e] = op;
    entryIsCall[e++] = 1;
    entryPosition[e] = operations[op].ret;
    entryOp[e++] = op;
  }
  const order = Array.from({ length: entryCount }, (_, i) => i).sort((a, b) => entryPosition[a] - entryPosition[b]);
  const tail = entryCount + 1;
  const nodeOp = new Int32Array(entryCount + 2);
  const nodeIsCall = new Uint8Array(entryCount + 2);
  const nodePosition = new Float64Array(entryCount + 2);
  const nextNode = new Int32Array(entryCount + 2);
  const prevNode = new Int32Array(entryCount + 2);
  const callNode = new Int32Array(count);
  const returnNode = new Int32Array(count);
  for (let i = 0; i < entryCount; i++) {
    const entry = order[i];
    if (i > 0 && entryPosition[order[i - 1]] === entryPosition[entry]) {
      throw new Error(`searchLinearization: two entries at history position ${entryPosition[entry]}`);
    }
    const node = i + 1;
    nodeOp[node] = entryOp[entry];
    nodeIsCall[node] = entryIsCall[entry];
    nodePosition[node] = entryPosition[entry];
    if (entryIsCall[entry]) callNode[entryOp[entry]] = node;
    else returnNode[entryOp[entry]] = node;
  }
  nodePosition[tail] = Number.POSITIVE_INFINITY;
  for (let node = 0; node <= tail; node++) {
    nextNode[node] = node + 1;
    prevNode[node] = node - 1;
  }

  // --- Optional operations: a list in call order (of those not linearized), and indexes by value.
  // Two lists: the anonymous writes (interchangeable but for their call position: only the
  // earliest unlinearized one is ever tried) and all other optional operations.
  optionalOps.sort((a, b) => call[a] - call[b]);
  const namedHead = optionalCount;
  const namedTail = optionalCount + 1;
  const anonymousHead = optionalCount + 2;
  const anonymousTail = optionalCount + 3;
  const optionalSlot = new Int32Array(count);
  const slotOp = new Int32Array(optionalCount + 4);
  const nextSlot = new Int32Array(optionalCount + 4);
  const prevSlot = new Int32Array(optionalCount + 4);
  nextSlot[namedHead] = namedTail;
  prevSlot[namedTail] = namedHead;
  nextSlot[anonymousHead] = anonymousTail;
  prevSlot[anonymousTail] = anonymousHead;
  const byNext = new Map<number, number[]>();
  const casByExpected = new Map<number, number[]>();
  const casByNext = new Map<number, number[]>();
  optionalOps.forEach((op, slot) => {
    optionalSlot[op] = slot;
    slotOp[slot] = op;
    const tailOfList = kind[op] === KIND_WRITE && next[op] === ANONYMOUS ? anonymousTail : namedTail;
    nextSlot[prevSlot[tailOfList]] = slot;
    prevSlot[slot] = prevSlot[tailOfList];
    nextSlot[slot] = tailOfList;
    prevSlot[tailOfList] = slot;
    addTo(byNext, next[op], op);
    if (kind[op] === KIND_CAS) {
      addTo(casByExpected, expected[op], op);
      addTo(casByNext, next[op], op);
    }
  });

  // --- The linearized set: a bitset over required operations (kept with `low`/`high` so a cache
  // snapshot holds only the few words in between) and one over optional operations.
  const requiredWords = new Uint32Array(Math.ceil(requiredCount / 32));
  const optionalWords = new Uint32Array(Math.ceil(optionalCount / 32));
  const lastWord = requiredWords.length - 1;
  const lastWordMask = requiredCount % 32 === 0 ? 0xffffffff : (1 << (requiredCount % 32)) - 1;
  const fullMask = (word: number): number => (word === lastWord ? lastWordMask : 0xffffffff);
  let low = 0;
  let high = -1;
  let requiredHash = 0;
  let optionalLinearized = 0;
  /**
   * An immutable copy of optionalWords, shared by every cache entry made while the optional set
   * stays the same (most steps linearize required operations): a copy costs O(optional / 32).
   */
  let optionalSnapshot: Uint32Array | null = null;
  let optionalSnapshotStale = false;
  let requiredLeft = requiredCount;
  const isLinearizedOptional = (op: number): boolean => (optionalWords[bitIndex[op] >>> 5] & (1 << (bitIndex[op] & 31))) !== 0;

  const setLinearized = (op: number): void => {
    const bit = bitIndex[op];
    const word = bit >>> 5;
    if (isRequired[op]) {
      requiredWords[word] |= 1 << (bit & 31);
      requiredHash ^= mix32(bit + 1);
      if (word > high) high = word;
      if (word === low) while (low <= lastWord && requiredWords[low] === fullMask(low)) low++;
    } else {
      optionalWords[word] |= 1 << (bit & 31);
      optionalLinearized++;
      optionalSnapshotStale = true;
    }
  };
  const clearLinearized = (op: number): void => {
    const bit = bitIndex[op];
    const word = bit >>> 5;
    if (isRequired[op]) {
      requiredWords[word] &= ~(1 << (bit & 31));
      requiredHash ^= mix32(bit + 1);
      if (word < low) low = word;
      if (word === high) while (high >= 0 && requiredWords[high] === 0) high--;
    } else {
      optionalWords[word] &= ~(1 << (bit & 31));
      optionalLinearized--;
      optionalSnapshotStale = true;
    }
  };
  /** Takes a linearized operation out of the lists (Lowe's "lift"). */
  const lift = (op: number): void => {
    if (isRequired[op]) {
      for (const node of [callNode[op], returnNode[op]]) {
        nextNode[prevNode[node]] = nextNode[node];
        prevNode[nextNode[node]] = prevNode[node];
      }
      requiredLeft--;
    } else {
      const slot = optionalSlot[op];
      nextSlot[prevSlot[slot]] = nextSlot[slot];
      prevSlot[nextSlot[slot]] = prevSlot[slot];
    }
  };
  /** Puts it back, exactly undoing lift (lifts are undone in reverse order: dancing links). */
  const unlift = (op: number): void => {
    if (isRequired[op]) {
      for (const node of [returnNode[op], callNode[op]]) {
        nextNode[prevNode[node]] = node;
        prevNode[nextNode[node]] = node;
      }
      requiredLeft++;
    } else {
      const slot = optionalSlot[op];
      nextSlot[prevSlot[slot]] = slot;
      prevSlot[nextSlot[slot]] = slot;
    }
  };

  // --- Memoization with subsumption.
  const cache = new Map<number, CacheEntry[]>();
  /** Required-set words of all cache entries, back to back (one allocation instead of one per entry). */
  let arena = new Uint32Array(1024);
  let arenaUsed = 0;
  /** Work beyond one step per loop iteration (copies, long scans), charged to the budget. */
  let extraSteps = 0;
  const currentOptional = (): Uint32Array | null => {
    if (optionalSnapshotStale) {
      optionalSnapshot = optionalLinearized === 0 ? null : optionalWords.slice();
      optionalSnapshotStale = false;
      extraSteps += optionalWords.length >>> 3;
    }
    return optionalSnapshot;
  };
  /** True when (linearized set, state, need) equals or is subsumed by a cached configuration; else caches it. */
  const seenOrCache = (state: number, need: number): boolean => {
    const bucketKey = (requiredHash ^ mix32(state + 0x3c6ef372)) | 0;
    let bucket = cache.get(bucketKey);
    const width = high >= low ? high - low + 1 : 0;
    const optional = currentOptional();
    if (bucket !== undefined) {
      for (const entry of bucket) {
        if (entry.state !== state || entry.low !== low || entry.width !== width) continue;
        if (entry.need !== NO_NEED && entry.need !== need) continue;
        let same = true;
        for (let i = 0; i < width; i++) {
          if (arena[entry.offset + i] !== requiredWords[low + i]) {
            same = false;
            break;
          }
        }
        if (!same) continue;
        const cachedOptional = entry.optional;
        if (cachedOptional === null || cachedOptional === optional) return true;
        let subset = true;
        for (let i = 0; i < cachedOptional.length; i++) {
          if ((cachedOptional[i] & ~optionalWords[i]) !== 0) {
            subset = false;
            break;
          }
        }
        extraSteps += cachedOptional.length >>> 3;
        if (subset) return true;
      }
    } else {
      bucket = [];
      cache.set(bucketKey, bucket);
    }
    if (arenaUsed + width > arena.length) {
      const grown = new Uint32Array(Math.max(arena.length * 2, arenaUsed + width));
      grown.set(arena);
      arena = grown;
    }
    arena.set(requiredWords.subarray(low, low + width), arenaUsed);
    bucket.push({ state, need, low, offset: arenaUsed, width, optional });
    arenaUsed += width;
    return false;
  };

  /**
   * The optional operations worth trying in `frame`, whose required operations (in list order up to
   * the first return entry, at history position `blockedAt`) have all been tried. See the header:
   * outside a run, only those that start a chain ending in a value a blocked required operation
   * needs; inside a run, only a cas that continues the chain.
   */
  const optionalCandidates = (frame: Frame, blockedAt: number): readonly number[] => {
    const state = frame.state;
    const candidates: number[] = [];
    const usable = (op: number): boolean => call[op] < blockedAt && !isLinearizedOptional(op);
    if (frame.need !== NO_NEED) {
      for (const op of casByExpected.get(state) ?? NO_OPERATIONS) {
        if (usable(op) && next[op] !== frame.need) candidates.push(op);
      }
      return candidates;
    }
    if (optionalLinearized === optionalCount) return candidates;
    const needed = new Set<number>();
    let anyOtherValue = false;
    for (let node = nextNode[0]; nodeIsCall[node]; node = nextNode[node]) {
      const op = nodeOp[node];
      if (kind[op] === KIND_MISMATCH) {
        if (expected[op] === state) anyOtherValue = true;
      } else if (kind[op] !== KIND_WRITE && expected[op] !== state) {
        needed.add(expected[op]);
      }
    }
    if (anyOtherValue) {
      for (let slot = nextSlot[namedHead]; slot !== namedTail && call[slotOp[slot]] < blockedAt; slot = nextSlot[slot]) {
        extraSteps++;
        const op = slotOp[slot];
        if (legal(op, state) && next[op] !== state) candidates.push(op);
      }
      const anonymous = nextSlot[anonymousHead];
      if (anonymous !== anonymousTail && call[slotOp[anonymous]] < blockedAt && state !== ANONYMOUS) {
        candidates.push(slotOp[anonymous]);
      }
      return candidates;
    }
    const pending = [...needed];
    while (pending.length > 0) {
      const value = pending.pop() as number;
      for (const op of casByNext.get(value) ?? NO_OPERATIONS) {
        if (usable(op) && expected[op] !== state && !needed.has(expected[op])) {
          needed.add(expected[op]);
          pending.push(expected[op]);
        }
      }
    }
    for (const value of needed) {
      for (const op of byNext.get(value) ?? NO_OPERATIONS) {
        if (usable(op) && legal(op, state)) candidates.push(op);
      }
    }
    return candidates;
  };

  // --- The search: depth-first over configurations, one Frame per configuration on the path.
  const frames: Frame[] = [];
  const enter = (depth: number, state: number, need: number, via: number): Frame => {
    let frame = frames[depth];
    if (frame === undefined) {
      frame = { state, need, via, phase: 0, node: 0, first: -1, candidates: NO_OPERATIONS, cursor: 0, optional: null };
      frames[depth] = frame;
    }
    frame.state = state;
    frame.need = need;
    frame.via = via;
    frame.phase = 0;
    frame.node = nextNode[0];
    frame.first = -1;
    frame.candidates = NO_OPERATIONS;
    frame.cursor = 0;
    frame.optional = currentOptional();
    return frame;
  };
  let depth = 0;
  let frame = enter(0, 0, NO_NEED, -1);
  seenOrCache(0, NO_NEED);
  let steps = 0;
  /** Linearizes `op` in the current frame; true when that leads to a configuration not seen before. */
  const descend = (op: number): boolean => {
    const newState = apply(op, frame.state);
    const newNeed = isRequired[op] ? NO_NEED : frame.need === NO_NEED ? frame.state : frame.need;
    setLinearized(op);
    if (seenOrCache(newState, newNeed)) {
      clearLinearized(op);
      optionalSnapshot = frame.optional;
      optionalSnapshotStale = false;
      return false;
    }
    lift(op);
    depth++;
    frame = enter(depth, newState, newNeed, op);
    return true;
  };

  for (;;) {
    if (++steps + extraSteps >= STEPS_PER_CHARGE) {
      if (!budget.charge(steps + extraSteps)) return 'unknown';
      steps = 0;
      extraSteps = 0;
    }
    if (frame.phase === 0) {
      // Observers first: a required read or mismatch that is legal now can go first in any
      // linearization that exists from here (it changes nothing, and nothing unlinearized must
      // precede it, since its call comes before every pending return), so take it without branching.
      frame.phase = 1;
      let node = nextNode[0];
      for (; nodeIsCall[node]; node = nextNode[node]) {
        steps++;
        const op = nodeOp[node];
        if (kind[op] !== KIND_READ && kind[op] !== KIND_MISMATCH) continue;
        if (!legal(op, frame.state) || (frame.need !== NO_NEED && legal(op, frame.need))) continue;
        frame.phase = 3;
        if (descend(op) && requiredLeft === 0) {
          budget.charge(steps + extraSteps);
          return 'linearizable';
        }
        break;
      }
      if (frame.phase === 1 && node !== tail) {
        // Just in time (Lowe §5): first try the operation whose completion comes first.
        const op = nodeOp[node];
        frame.first = op;
        if (legal(op, frame.state) && (frame.need === NO_NEED || !legal(op, frame.need)) && descend(op)) {
          if (requiredLeft === 0) {
            budget.charge(steps + extraSteps);
            return 'linearizable';
          }
        }
      }
      continue;
    }
    if (frame.phase === 1) {
      const node = frame.node;
      if (node === tail) {
        // Unreachable: while a required operation is unlinearized, its return entry lies ahead.
        throw new Error('searchLinearization: reached the end of the entry list with required operations left');
      }
      if (nodeIsCall[node]) {
        frame.node = nextNode[node];
        const op = nodeOp[node];
        if (op === frame.first) continue;
        // Inside a run of optional operations, only an operation the run was needed for may follow.
        if (legal(op, frame.state) && (frame.need === NO_NEED || !legal(op, frame.need)) && descend(op)) {
          if (requiredLeft === 0) {
            budget.charge(steps + extraSteps);
            return 'linearizable';
          }
        }
        continue;
      }
      // A return entry: every required operation that may go first has been tried.
      frame.phase = 2;
      frame.candidates = optionalCount === 0 ? NO_OPERATIONS : optionalCandidates(frame, nodePosition[node]);
      frame.cursor = 0;
      continue;
    }
    if (frame.phase === 2 && frame.cursor < frame.candidates.length) {
      descend(frame.candidates[frame.cursor++]);
      continue;
    }
    // Nothing left to try here: back to the previous configuration.
    if (depth === 0) {
      budget.charge(steps + extraSteps);
      return 'not-linearizable';
    }
    const undone = frame.via;
    clearLinearized(undone);
    unlift(undone);
    frame = frames[--depth];
    optionalSnapshot = frame.optional;
    optionalSnapshotStale = false;
  }
}
