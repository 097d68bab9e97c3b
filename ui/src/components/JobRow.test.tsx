// @vitest-environment happy-dom
import { act } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Job } from '../api/types';
import { job } from '../test/fixtures';
import { JobCard } from './JobRow';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLElement;
let root: Root;

beforeEach(() => {
  container = document.createElement('ul');
  document.body.append(container);
  root = createRoot(container);
});
afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

function render(j: Job) {
  act(() => root.render(<JobCard job={j} onDelete={() => undefined} />));
  return container.querySelector('li')!;
}

const buttons = (li: Element) => [...li.querySelectorAll('button')].map((b) => b.textContent?.trim()).sort();

describe('JobCard', () => {
  it('shows the status as the exact word and only the allowed buttons', () => {
    const li = render(job({ status: 'paused', type: 'ytdlp' }));
    expect([...li.querySelectorAll('[data-status]')].map((e) => e.textContent)).toEqual(['paused']);
    expect(buttons(li)).toEqual(['Cancel', 'Delete', 'Resume']);
    expect(buttons(render(job({ status: 'running', type: 'ffmpeg' })))).toEqual(['Cancel', 'Pause', 'Stop']);
  });

  it('renders job data as text, never as HTML', () => {
    const evil = 'https://example.com/<img src=x onerror="window.__pwned=1">';
    const li = render(
      job({ url: evil, status: 'failed', errorCode: 'not_found', errorMessage: '<b>404</b> <script>x()</script>' }),
    );
    expect(li.querySelector('img, b, script')).toBeNull();
    expect(li.textContent).toContain(evil);
    expect(li.textContent).toContain('not_found');
    expect(li.textContent).toContain('<b>404</b>');
  });

  it('shows speed, ETA and size in human units, and an unknown progress as indeterminate', () => {
    const li = render(job({ status: 'running', progress: null, speed: 1_200_000, eta: 65, totalBytes: null }));
    expect(li.textContent).toContain('1.2 MB/s');
    expect(li.textContent).toContain('1 min 05 s');
    const bar = li.querySelector('[role="progressbar"]')!;
    expect(bar.hasAttribute('aria-valuenow')).toBe(false);
    const known = render(job({ status: 'running', progress: 42.5 }));
    expect(known.querySelector('[role="progressbar"]')!.getAttribute('aria-valuenow')).toBe('42.5');
  });
});
