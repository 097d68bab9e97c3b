// @vitest-environment happy-dom
import { act, useState } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Target } from '../api/types';
import { CookiesField, NotifyField } from './ExtraOptions';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLElement;
let root: Root;

beforeEach(() => {
  container = document.createElement('div');
  document.body.append(container);
  root = createRoot(container);
});
afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

const TARGETS: Target[] = [
  { name: 'home', kind: 'webhook', events: ['completed', 'failed'], default: true },
  { name: 'phone', kind: 'apprise', events: ['completed'], default: false },
];

describe('NotifyField', () => {
  it('starts on the defaults and reports null while the choice is the defaults', () => {
    const seen: (string[] | null)[] = [];
    function Harness() {
      const [value, setValue] = useState<string[] | null>(null);
      return (
        <NotifyField
          id="t"
          targets={TARGETS}
          value={value}
          onChange={(v) => {
            seen.push(v);
            setValue(v);
          }}
        />
      );
    }
    act(() => root.render(<Harness />));
    const box = (name: string) => container.querySelector<HTMLInputElement>(`input[aria-label="${name}"]`)!;
    expect(container.querySelector('legend')?.textContent).toBe('Notify');
    expect([box('home').checked, box('phone').checked]).toEqual([true, false]);
    expect(box('home').getAttribute('aria-describedby')).toBe('t-notify-home-default');
    act(() => box('phone').click());
    act(() => box('home').click());
    act(() => box('home').click());
    act(() => box('phone').click());
    expect(seen).toEqual([['home', 'phone'], ['phone'], ['home', 'phone'], null]);
    act(() => box('home').click());
    expect(seen.at(-1)).toEqual([]);
  });
});

describe('CookiesField', () => {
  it('offers None first, then the stored names, and keeps a chosen name that went away', () => {
    act(() => root.render(<CookiesField id="c" names={['a', 'b']} value="gone" onChange={() => undefined} />));
    const options = [...container.querySelectorAll('option')].map((o) => [o.value, o.textContent]);
    expect(options).toEqual([
      ['', 'None'],
      ['a', 'a'],
      ['b', 'b'],
      ['gone', 'gone'],
    ]);
    expect(container.querySelector('label')?.textContent).toBe('Cookies');
  });
});
