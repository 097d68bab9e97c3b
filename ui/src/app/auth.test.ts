import { describe, expect, it } from 'vitest';
import { AuthStore } from './auth';

describe('AuthStore', () => {
  it('opens on a 401, and "not now" stops it from asking again until asked', () => {
    const auth = new AuthStore();
    auth.require('missing', 'send a token');
    expect(auth.get()).toMatchObject({ open: true, reason: 'missing', message: 'send a token' });
    auth.dismiss();
    expect(auth.get()).toMatchObject({ open: false, dismissed: true });
    expect(auth.waiting()).toBe(true);
    auth.require('missing', 'again');
    expect(auth.get().open).toBe(false);
    auth.reopen();
    expect(auth.get().open).toBe(true);
    auth.close();
    expect(auth.get()).toMatchObject({ open: false, dismissed: false });
    expect(auth.waiting()).toBe(false);
  });

  it('a refused kept token says so', () => {
    const auth = new AuthStore();
    auth.require('wrong', 'a valid API token is required');
    expect(auth.get()).toMatchObject({ open: true, reason: 'wrong' });
  });
});
