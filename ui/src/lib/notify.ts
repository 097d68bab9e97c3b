// The "Notify" choice of a job or a subscription: which targets, and whether to send
// `notify` at all (only when it differs from the targets marked default). Pure.
import type { Target } from '../api/types';

/** The names of the targets told by default, in the configuration's order. */
export function defaultTargets(targets: readonly Target[]): string[] {
  return targets.filter((t) => t.default).map((t) => t.name);
}

/** The targets that may be chosen for a job (those told about a job's end). */
export function jobTargets(targets: readonly Target[]): Target[] {
  return targets.filter((t) => t.events.some((e) => e === 'completed' || e === 'failed'));
}

/**
 * The `notify` option for a choice: undefined when it is the same set as the defaults
 * (nothing to send), else the chosen names in the targets' order (`[]` tells none).
 * Names no longer configured are dropped.
 */
export function notifyOption(chosen: ReadonlySet<string> | readonly string[], targets: readonly Target[]): string[] | undefined {
  const set = new Set(chosen);
  const picked = targets.filter((t) => set.has(t.name)).map((t) => t.name);
  const defaults = defaultTargets(targets);
  const same = picked.length === defaults.length && defaults.every((n) => picked.includes(n));
  return same ? undefined : picked;
}

/** Toggles one name in a choice (a new set). */
export function toggle(chosen: ReadonlySet<string>, name: string, on: boolean): Set<string> {
  const next = new Set(chosen);
  if (on) next.add(name);
  else next.delete(name);
  return next;
}
