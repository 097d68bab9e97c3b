// The files of completed jobs (GET /files/{id}), fetched once each, a few at a time.
import { api, ApiError } from '../api/client';
import type { FileList } from '../api/types';

export type FilesState =
  | { state: 'loading' }
  | { state: 'ready'; list: FileList }
  | { state: 'error'; message: string };

type Listener = () => void;
const MAX_PARALLEL = 4;

export class FilesStore {
  private entries = new Map<string, FilesState>();
  private listeners = new Map<string, Set<Listener>>();
  private queue: string[] = [];
  private running = 0;
  private waiters = new Map<string, ((list: FileList | null) => void)[]>();
  private fetcher: (jobId: string) => Promise<FileList>;

  constructor(fetcher: (jobId: string) => Promise<FileList> = api.files) {
    this.fetcher = fetcher;
  }

  get = (jobId: string): FilesState | undefined => this.entries.get(jobId);

  subscribe = (jobId: string, listener: Listener): (() => void) => {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
    };
  };

  /** Fetches a job's files unless they are known or on their way. */
  load(jobId: string, force = false): Promise<FileList | null> {
    const current = this.entries.get(jobId);
    if (!force && current && current.state !== 'error') {
      return Promise.resolve(current.state === 'ready' ? current.list : null);
    }
    this.set(jobId, { state: 'loading' });
    return new Promise((resolve) => {
      this.waiters.set(jobId, [...(this.waiters.get(jobId) ?? []), resolve]);
      if (!this.queue.includes(jobId)) this.queue.push(jobId);
      this.pump();
    });
  }

  forget(jobId: string): void {
    if (this.entries.delete(jobId)) this.notify(jobId);
  }


  private pump(): void {
    while (this.running < MAX_PARALLEL && this.queue.length) {
      const jobId = this.queue.shift()!;
      this.running += 1;
      this.fetcher(jobId)
        .then(
          (list) => {
            this.set(jobId, { state: 'ready', list });
            this.resolve(jobId, list);
          },
          (e: unknown) => {
            const message = e instanceof ApiError ? e.message : 'The files could not be listed.';
            this.set(jobId, { state: 'error', message });
            this.resolve(jobId, null);
          },
        )
        .finally(() => {
          this.running -= 1;
          this.pump();
        });
    }
  }

  private resolve(jobId: string, list: FileList | null): void {
    for (const w of this.waiters.get(jobId) ?? []) w(list);
    this.waiters.delete(jobId);
  }

  private set(jobId: string, state: FilesState): void {
    this.entries.set(jobId, state);
    this.notify(jobId);
  }

  private notify(jobId: string): void {
    const set = this.listeners.get(jobId);
    if (set) for (const l of [...set]) l();
  }
}
