// Whether the page is waiting for an API token, and why.

export interface AuthState {
  /** The token dialog is up. */
  open: boolean;
  /** The person closed the dialog without a token: a bar offers it again, and the page
   * stops asking the server (it would only answer 401). */
  dismissed: boolean;
  /** "missing": no token kept; "wrong": the kept one was refused. */
  reason: 'missing' | 'wrong';
  message: string | null;
}

type Listener = () => void;

export class AuthStore {
  private state: AuthState = { open: false, dismissed: false, reason: 'missing', message: null };
  private listeners = new Set<Listener>();

  get = (): AuthState => this.state;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** A 401 (or a refused socket): ask, unless the person said "not now". */
  require(reason: AuthState['reason'], message: string | null): void {
    if (this.state.dismissed) return;
    if (this.state.open && this.state.reason === reason) return;
    this.set({ open: true, dismissed: false, reason, message });
  }

  /** The person asked for the dialog (from the bar). */
  reopen(): void {
    this.set({ ...this.state, open: true, dismissed: false });
  }

  /** "Not now" (or Escape). */
  dismiss(): void {
    if (this.state.open) this.set({ ...this.state, open: false, dismissed: true });
  }

  /** A token was accepted. */
  close(): void {
    if (this.state.open || this.state.dismissed) {
      this.set({ ...this.state, open: false, dismissed: false });
    }
  }

  /** Whether the page should hold its polls. */
  waiting(): boolean {
    return this.state.open || this.state.dismissed;
  }

  private set(state: AuthState): void {
    this.state = state;
    for (const l of [...this.listeners]) l();
  }
}
