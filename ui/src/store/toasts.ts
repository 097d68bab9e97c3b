// Short notices in a corner: completed and failed jobs, refused actions.

export interface ToastLink {
  label: string;
  href: string;
}

export interface Toast {
  id: number;
  kind: 'success' | 'error' | 'info';
  title: string;
  message?: string;
  links?: ToastLink[];
  /** Milliseconds before it goes by itself. */
  timeout: number;
}

type Listener = () => void;

export class ToastStore {
  private toasts: readonly Toast[] = [];
  private listeners = new Set<Listener>();
  private timers = new Map<number, ReturnType<typeof setTimeout>>();
  private seq = 0;

  getAll = (): readonly Toast[] => this.toasts;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  show(toast: Omit<Toast, 'id' | 'timeout'> & { timeout?: number }): number {
    const id = ++this.seq;
    const timeout = toast.timeout ?? (toast.kind === 'error' ? 10000 : 6000);
    // At most five on screen: the oldest goes.
    const kept = this.toasts.length >= 5 ? this.toasts.slice(1) : this.toasts;
    for (const t of this.toasts) if (!kept.includes(t)) this.clearTimer(t.id);
    this.set([...kept, { ...toast, id, timeout }]);
    this.startTimer(id, timeout);
    return id;
  }

  update(id: number, patch: Partial<Omit<Toast, 'id'>>): void {
    if (!this.toasts.some((t) => t.id === id)) return;
    this.set(this.toasts.map((t) => (t.id === id ? { ...t, ...patch } : t)));
  }

  /** Holds a toast while the pointer or focus is on it. */
  hold(id: number): void {
    this.clearTimer(id);
  }

  release(id: number): void {
    const t = this.toasts.find((x) => x.id === id);
    if (t && !this.timers.has(id)) this.startTimer(id, 3000);
  }

  dismiss = (id: number): void => {
    this.clearTimer(id);
    this.set(this.toasts.filter((t) => t.id !== id));
  };

  private startTimer(id: number, ms: number): void {
    this.clearTimer(id);
    this.timers.set(id, setTimeout(() => this.dismiss(id), ms));
  }

  private clearTimer(id: number): void {
    const t = this.timers.get(id);
    if (t !== undefined) clearTimeout(t);
    this.timers.delete(id);
  }

  private set(next: readonly Toast[]): void {
    this.toasts = next;
    for (const l of [...this.listeners]) l();
  }
}
