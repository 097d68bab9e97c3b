import { describe, expect, it } from 'vitest';
import { nextState, polls, startsResync, stateText, type ConnEvent, type ConnState } from './connection';

function run(events: ConnEvent[], from: ConnState = 'connecting'): ConnState[] {
  const states: ConnState[] = [];
  let s = from;
  for (const e of events) {
    s = nextState(s, e);
    states.push(s);
  }
  return states;
}

describe('the connection state machine', () => {
  it('connected → polling → resyncing → connected', () => {
    expect(run(['connected', 'resync_ok', 'disconnected', 'connected', 'resync_ok'])).toEqual([
      'resyncing',
      'connected',
      'polling',
      'resyncing',
      'connected',
    ]);
  });

  it('polls only while the socket is down', () => {
    const all: ConnState[] = ['connecting', 'connected', 'polling', 'resyncing'];
    expect(all.filter(polls)).toEqual(['polling']);
  });

  it('a socket that cannot connect at all polls', () => {
    expect(nextState('connecting', 'connect_error')).toBe('polling');
    expect(nextState('polling', 'connect_error')).toBe('polling');
  });

  it('resyncs once per reconnection', () => {
    expect(startsResync('polling', nextState('polling', 'connected'))).toBe(true);
    expect(startsResync('resyncing', nextState('resyncing', 'connected'))).toBe(false);
    expect(startsResync('connected', nextState('connected', 'connected'))).toBe(false);
  });

  it('a failed resync stays resyncing (tried again), a drop during it polls', () => {
    expect(nextState('resyncing', 'resync_failed')).toBe('resyncing');
    expect(nextState('resyncing', 'disconnected')).toBe('polling');
  });

  it('a late resync answer does not end polling', () => {
    expect(nextState('polling', 'resync_ok')).toBe('polling');
  });

  it('says what it is', () => {
    expect(stateText('connected')).toBe('Live');
    expect(stateText('polling').toLowerCase()).toContain('live updates paused');
  });
});
