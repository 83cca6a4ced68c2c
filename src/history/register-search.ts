/**
 * The linearizability search for the history of ONE key of a key-value register.
 *
 * Algorithm: Wing & Gong's search ("Testing and verifying concurrent objects", 1993) with Lowe's
 * improvements ("Testing for linearizability", 2017) as used by Porcupine and Knossos: the
 * operations' invoke ("call") and completion ("return") entries form one list in history order; the
 * search walks it, tries to linearize the next call whose operation is legal in the current state,
 * lifts it out of the list, and restarts from the head; reaching a return entry means that operation
 * was not linearized before it completed, so it backtracks. Configurations already explored —
 * (set of linearized operations, register state) — are memoized, so no configuration is searched twice.
 *
 * Two refinements for operations whose outcome is unknown (`info`, or still pending at a cut):
 * they are OPTIONAL — they have no return entry (they may take effect at any time after their
 * invoke) and the search succeeds as soon as every REQUIRED operation is linearized (an optional
 * operation that never took effect is simply never linearized). And since an optional operation
 * never has to be linearized, a configuration (L ∪ {optional ops}, s) can do nothing that (L, s)
 * cannot, so it is pruned when (L, s) is already in the cache (subsumption; the relation is a
 * simulation, so the search stays complete).
 *
 * Locality (Herlihy & Wing 1990, §3.3: linearizability is compositional) is what lets the caller
 * check each key separately.
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
 * one visit of a list entry; a few tens of nanoseconds each.
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

/** How many steps run between two checks of the budget. */
const STEPS_PER_CHARGE = 1024;

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
  /** First word of the required-set bitset that is not all ones (all words before it are). */
  readonly low: number;
  /** The words from `low` to the last non-zero word (all words after it are zero). */
  readonly words: Uint32Array;
  /** The optional-set bitset; null when no optional operation is linearized. */
  readonly optional: Uint32Array | null;
}

/**
 * Searches for a linearization of one key's operations. Returns 'unknown' when the budget runs out.
 * Throws if the operations are inconsistent (a call not before its return, two entries at one position).
 */
export function searchLinearization(operations: readonly RegisterSearchOperation[], budget: SearchBudget): SearchVerdict {
  const count = operations.length;
  // --- Encode operations: kinds, interned values (state 0 = key absent), bit indices.
  const valueIds = new Map<string, number>();
  const intern = (value: string | null): number => {
    if (value === null) return 0;
    let id = valueIds.get(value);
    if (id === undefined) {
      id = valueIds.size + 1;
      valueIds.set(value, id);
    }
    return id;
  };
  const kind = new Uint8Array(count);
  const expected = new Int32Array(count);
  const next = new Int32Array(count);
  const isRequired = new Uint8Array(count);
  const bitIndex = new Int32Array(count);
  let requiredCount = 0;
  let optionalCount = 0;
  for (let op = 0; op < count; op++) {
    const operation = operations[op];
    if (!(operation.call < operation.ret)) {
      throw new Error(`searchLinearization: operation ${operation.source.id} has call ${operation.call} >= return ${operation.ret}`);
    }
    kind[op] = KIND_CODES[operation.kind];
    expected[op] = intern(operation.expected);
    next[op] = intern(operation.next);
    if (operation.ret === Number.POSITIVE_INFINITY) {
      bitIndex[op] = optionalCount++;
    } else {
      isRequired[op] = 1;
      bitIndex[op] = requiredCount++;
    }
  }
  if (requiredCount === 0) return 'linearizable';

  // --- The entry list (Lowe §3): call entries for all, return entries for required operations,
  // in history order. Node 0 is the head sentinel, node entryCount + 1 the tail sentinel.
  const entryCount = count + requiredCount;
  const entryPosition = new Float64Array(entryCount);
  const entryOp = new Int32Array(entryCount);
  const entryIsCall = new Uint8Array(entryCount);
  let e = 0;
  for (let op = 0; op < count; op++) {
    entryPosition[e] = operations[op].call;
    entryOp[e] = op;
    entryIsCall[e++] = 1;
    if (isRequired[op]) {
      entryPosition[e] = operations[op].ret;
      entryOp[e++] = op;
    }
  }
  const order = Array.from({ length: entryCount }, (_, i) => i).sort((a, b) => entryPosition[a] - entryPosition[b]);
  const nodeOp = new Int32Array(entryCount + 2);
  const nodeIsCall = new Uint8Array(entryCount + 2);
  const nextNode = new Int32Array(entryCount + 2);
  const prevNode = new Int32Array(entryCount + 2);
  const callNode = new Int32Array(count);
  const returnNode = new Int32Array(count).fill(-1);
  const tail = entryCount + 1;
  for (let i = 0; i < entryCount; i++) {
    const entry = order[i];
    if (i > 0 && entryPosition[order[i - 1]] === entryPosition[entry]) {
      throw new Error(`searchLinearization: two entries at history position ${entryPosition[entry]}`);
    }
    const node = i + 1;
    nodeOp[node] = entryOp[entry];
    nodeIsCall[node] = entryIsCall[entry];
    if (entryIsCall[entry]) callNode[entryOp[entry]] = node;
    else returnNode[entryOp[entry]] = node;
  }
  for (let node = 0; node <= tail; node++) {
    nextNode[node] = node + 1;
    prevNode[node] = node - 1;
  }
  const unlink = (node: number): void => {
    nextNode[prevNode[node]] = nextNode[node];
    prevNode[nextNode[node]] = prevNode[node];
  };
  const relink = (node: number): void => {
    nextNode[prevNode[node]] = node;
    prevNode[nextNode[node]] = node;
  };

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
    }
  };

  const cache = new Map<number, CacheEntry[]>();
  const bucketOf = (state: number): number => (requiredHash ^ mix32(state + 0x3c6ef372)) | 0;
  /** True when (linearized set, state) equals or is subsumed by a cached configuration; else caches it. */
  const seenOrCache = (state: number): boolean => {
    const bucketKey = bucketOf(state);
    let bucket = cache.get(bucketKey);
    const width = high >= low ? high - low + 1 : 0;
    if (bucket !== undefined) {
      for (const entry of bucket) {
        if (entry.state !== state || entry.low !== low || entry.words.length !== width) continue;
        let same = true;
        for (let i = 0; i < width; i++) {
          if (entry.words[i] !== requiredWords[low + i]) {
            same = false;
            break;
          }
        }
        if (!same) continue;
        const cachedOptional = entry.optional;
        if (cachedOptional === null) return true;
        let subset = true;
        for (let i = 0; i < cachedOptional.length; i++) {
          if ((cachedOptional[i] & ~optionalWords[i]) !== 0) {
            subset = false;
            break;
          }
        }
        if (subset) return true;
      }
    } else {
      bucket = [];
      cache.set(bucketKey, bucket);
    }
    bucket.push({
      state,
      low,
      words: requiredWords.slice(low, low + width),
      optional: optionalLinearized === 0 ? null : optionalWords.slice(),
    });
    return false;
  };

  // --- The search (Lowe, Algorithm 1 with memoization).
  const stackOp = new Int32Array(count);
  const stackState = new Int32Array(count);
  let depth = 0;
  let state = 0;
  let requiredLeft = requiredCount;
  let node = nextNode[0];
  let steps = 0;
  seenOrCache(state);
  for (;;) {
    if (++steps === STEPS_PER_CHARGE) {
      steps = 0;
      if (!budget.charge(STEPS_PER_CHARGE)) return 'unknown';
    }
    if (node === tail) {
      // Unreachable: while a required operation is unlinearized, its return entry lies ahead.
      throw new Error('searchLinearization: reached the end of the entry list with required operations left');
    }
    const op = nodeOp[node];
    if (nodeIsCall[node]) {
      let newState: number;
      switch (kind[op]) {
        case KIND_WRITE:
          newState = next[op];
          break;
        case KIND_READ:
          newState = state === expected[op] ? state : -1;
          break;
        case KIND_CAS:
          newState = state === expected[op] ? next[op] : -1;
          break;
        default:
          newState = state !== expected[op] ? state : -1;
          break;
      }
      if (newState >= 0) {
        setLinearized(op);
        if (!seenOrCache(newState)) {
          stackOp[depth] = op;
          stackState[depth++] = state;
          state = newState;
          unlink(callNode[op]);
          if (isRequired[op]) {
            unlink(returnNode[op]);
            if (--requiredLeft === 0) {
              budget.charge(steps);
              return 'linearizable';
            }
          }
          node = nextNode[0];
          continue;
        }
        clearLinearized(op);
      }
      node = nextNode[node];
    } else {
      // A return entry: its operation completed before being linearized on this path.
      if (depth === 0) {
        budget.charge(steps);
        return 'not-linearizable';
      }
      const undone = stackOp[--depth];
      state = stackState[depth];
      clearLinearized(undone);
      if (isRequired[undone]) {
        relink(returnNode[undone]);
        requiredLeft++;
      }
      relink(callNode[undone]);
      node = nextNode[callNode[undone]];
    }
  }
}
