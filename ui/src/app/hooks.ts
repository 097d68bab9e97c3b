// React's view of the stores: each hook re-renders only the component that reads it.
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { Job } from '../api/types';
import type { FilesState } from '../store/files';
import type { ListState } from '../store/jobs';
import type { ResourceState, ResourceStore } from '../store/resource';
import { auth, files, store, sync, toasts } from './services';

export function useJob(jobId: string): Job | undefined {
  const subscribe = useCallback((cb: () => void) => store.subscribeJob(jobId, cb), [jobId]);
  return useSyncExternalStore(subscribe, () => store.get(jobId));
}

export function useList(): ListState {
  return useSyncExternalStore(store.subscribeList, store.getList);
}

export function useFiles(jobId: string): FilesState | undefined {
  const subscribe = useCallback((cb: () => void) => files.subscribe(jobId, cb), [jobId]);
  return useSyncExternalStore(subscribe, () => files.get(jobId));
}

export function useToasts() {
  return useSyncExternalStore(toasts.subscribe, toasts.getAll);
}

export function useConnState() {
  return useSyncExternalStore(sync.subscribe, sync.getState);
}

export function useAuth() {
  return useSyncExternalStore(auth.subscribe, auth.get);
}

/** A value that follows `value` after `ms` without changes. */
export function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return debounced;
}

// One IntersectionObserver for every element that waits to be seen.
const seen = new WeakMap<Element, () => void>();
let observer: IntersectionObserver | null = null;
function sharedObserver(): IntersectionObserver | null {
  if (typeof IntersectionObserver === 'undefined') return null;
  observer ??= new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        const cb = seen.get(e.target);
        if (cb) {
          seen.delete(e.target);
          observer?.unobserve(e.target);
          cb();
        }
      }
    },
    { rootMargin: '300px 0px' },
  );
  return observer;
}

/** Calls `onSeen` once, when the element comes near the screen (at once without the API). */
export function useOnceVisible<T extends Element>(onSeen: () => void, enabled = true) {
  const ref = useRef<T>(null);
  const cb = useRef(onSeen);
  cb.current = onSeen;
  useEffect(() => {
    const el = ref.current;
    if (!enabled || !el) return;
    const obs = sharedObserver();
    if (!obs) {
      cb.current();
      return;
    }
    seen.set(el, () => cb.current());
    obs.observe(el);
    return () => {
      seen.delete(el);
      obs.unobserve(el);
    };
  }, [enabled]);
  return ref;
}

/** A list beside the jobs, loaded when a component first reads it. */
export function useResource<T>(resource: ResourceStore<T>): ResourceState<T> {
  useEffect(() => {
    void resource.ensure();
  }, [resource]);
  return useSyncExternalStore(resource.subscribe, resource.get);
}
