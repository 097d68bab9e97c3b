import { describe, expect, it } from 'vitest';
import { hashFor, viewFromHash, VIEWS } from './views';

describe('views', () => {
  it('reads the view from the fragment, and leaves others (the skip link) alone', () => {
    expect(viewFromHash('')).toBe('downloads');
    expect(viewFromHash('#')).toBe('downloads');
    expect(viewFromHash('#subscriptions')).toBe('subscriptions');
    expect(viewFromHash('#/cookies')).toBe('cookies');
    expect(viewFromHash('#notifications')).toBe('notifications');
    expect(viewFromHash('#main')).toBeNull();
  });

  it('round-trips every view', () => {
    for (const v of VIEWS) expect(viewFromHash(hashFor(v.id))).toBe(v.id);
  });
});
