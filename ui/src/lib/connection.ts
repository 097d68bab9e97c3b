// The live connection as a small state machine. Pure.
//
//   connecting ──connected──▶ resyncing ──resync_ok──▶ connected
//        │                      ▲  │  (resync_failed: stays, tries again)
//   disconnected /              │  │
//   connect_error           connected  disconnected / connect_error
//        ▼                      │  ▼
//     polling ◀──disconnected── connected
//
// While `polling`, the page asks GET /downloads every POLL_MS; on `resyncing` it asks once
// (after the socket's subscription is acknowledged, so no event falls between the two);
// while `connected` it never polls.

export type ConnState = 'connecting' | 'connected' | 'polling' | 'resyncing';
export type ConnEvent = 'connected' | 'disconnected' | 'connect_error' | 'resync_ok' | 'resync_failed';

export const POLL_MS = 3000;
export const RESYNC_RETRY_MS = 3000;

export function nextState(state: ConnState, event: ConnEvent): ConnState {
  switch (event) {
    case 'connected':
      // A (re)connection always resyncs once: events sent while away are lost.
      return state === 'connected' ? 'connected' : 'resyncing';
    case 'disconnected':
    case 'connect_error':
      return 'polling';
    case 'resync_ok':
      return state === 'resyncing' ? 'connected' : state;
    case 'resync_failed':
      return state;
  }
}

/** Whether the page polls GET /downloads in this state. */
export function polls(state: ConnState): boolean {
  return state === 'polling';
}

/** Whether moving from `prev` to `next` starts a resync. */
export function startsResync(prev: ConnState, next: ConnState): boolean {
  return next === 'resyncing' && prev !== 'resyncing';
}

/** The words the page shows for the state. */
export function stateText(state: ConnState): string {
  switch (state) {
    case 'connected':
      return 'Live';
    case 'polling':
      return 'Live updates paused, reconnecting…';
    case 'resyncing':
      return 'Reconnected, syncing…';
    case 'connecting':
      return 'Connecting…';
  }
}
