// A list the page loads from one REST route and keeps current from socket events:
// subscriptions, cookie files, notification targets, deliveries. An older server without
// the route answers 404: the list is then `unavailable`, and its view says so.
import { ApiError } from '../api/client';

export type Availability = 'idle' | 'loading' | 'ready' | 'unavailable' | 'error';

export interface ResourceState<T> {
  availability: Availability;
  items: readonly T[];
  /** Why the last load failed (shown in the view); null otherwise. */
  error: string | null;
}

type Listener = () => void;

export class ResourceStore<T> {
  private state: ResourceState<T> = { availability: 'idle', items: [], error: null };
  private listeners = new Set<Listener>();
  private inFlight: Promise<void> | null = null;
  private again = false;

  constructor(private readonly loader: () => Promise<readonly T[]>) {}

  get = (): ResourceState<T> => this.state;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Loads the list the first time it is wanted. */
  ensure(): Promise<void> {
    if (this.state.availability === 'idle') return this.refresh();
    return this.inFlight ?? Promise.resolve();
  }

  /** Loads it again, if it was ever loaded (a reconnection, a new token). */
  refreshIfLoaded(): void {
    if (this.state.availability !== 'idle') void this.refresh();
  }

  /** Loads the list now; one request at a time (a second ask runs once the first lands). */
  refresh(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    if (this.state.availability === 'idle') this.set({ ...this.state, availability: 'loading' });
    this.inFlight = this.loader()
      .then((items) => this.set({ availability: 'ready', items, error: null }))
      .catch((e: unknown) => {
        if (e instanceof ApiError && (e.status === 404 || e.status === 405)) {
          this.set({ availability: 'unavailable', items: [], error: null });
        } else {
          const message = e instanceof Error ? e.message : String(e);
          // What was shown stays; the error is said beside it.
          this.set({ ...this.state, availability: this.state.availability === 'ready' ? 'ready' : 'error', error: message });
        }
      })
      .finally(() => {
        this.inFlight = null;
        if (this.again) {
          this.again = false;
          void this.refresh();
        }
      });
    return this.inFlight;
  }

  /** Changes the items (an event, an answer); ignored while the route is unavailable. */
  update(fn: (items: readonly T[]) => readonly T[]): void {
    if (this.state.availability === 'unavailable') return;
    const items = fn(this.state.items);
    if (items === this.state.items) return;
    this.set({ ...this.state, items });
  }

  private set(next: ResourceState<T>): void {
    this.state = next;
    for (const l of [...this.listeners]) l();
  }
}
