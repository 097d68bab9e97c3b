import { useCallback, useState } from 'react';
import { getToken } from '../api/client';
import { forgetToken, toasts } from '../app/services';
import { bookmarklet } from '../lib/share';
import { Modal } from './Modal';

const SHORTCUTS: [string, string][] = [
  ['/', 'Go to the URL field'],
  ['Enter', 'Download (Shift+Enter: a new line, for several URLs)'],
  ['?', 'This help'],
  ['← →', 'Move between the status tabs'],
  ['Esc', 'Close a dialog'],
];

export function HelpDialog({ onClose }: { onClose: () => void }) {
  const [hasToken, setHasToken] = useState(() => getToken() !== null);

  // React refuses javascript: URLs in JSX, so the bookmarklet's href is set on the element
  // (in a ref callback: before the dialog picks what to focus).
  const link = useCallback((el: HTMLAnchorElement | null) => {
    el?.setAttribute('href', bookmarklet(location.origin));
  }, []);

  return (
    <Modal title="Help" onClose={onClose} size="md">
      <div className="space-y-6 text-sm">
        <section>
          <h3 className="font-semibold">Send pages to mediad</h3>
          <p className="mt-1 text-zinc-600 dark:text-zinc-400">
            Drag this link to your bookmarks bar. Clicked on any page, it opens mediad with that page's
            address in the URL field.
          </p>
          <p className="mt-3">
            <a
              ref={link}
              draggable
              className="btn-secondary cursor-grab"
              onClick={(e) => {
                e.preventDefault();
                toasts.show({
                  kind: 'info',
                  title: 'Drag it to your bookmarks',
                  message: 'The bookmarklet works from other pages, not from this one.',
                });
              }}
            >
              Send to mediad
            </a>
          </p>
          <p className="mt-3 text-zinc-600 dark:text-zinc-400">
            On a phone, add mediad to the home screen (Install app); then Share → mediad sends a link
            straight here.
          </p>
        </section>

        <section>
          <h3 className="font-semibold">Keyboard</h3>
          <dl className="mt-2 grid grid-cols-[auto_1fr] gap-x-4 gap-y-1.5">
            {SHORTCUTS.map(([key, what]) => (
              <div key={key} className="contents">
                <dt>
                  <kbd className="rounded border border-zinc-300 bg-zinc-50 px-1.5 py-0.5 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-800">
                    {key}
                  </kbd>
                </dt>
                <dd className="text-zinc-600 dark:text-zinc-400">{what}</dd>
              </div>
            ))}
          </dl>
        </section>

        <section>
          <h3 className="font-semibold">API</h3>
          <p className="mt-1 text-zinc-600 dark:text-zinc-400">
            Everything this page does goes through the REST API and Socket.IO (namespace /jobs).{' '}
            <a
              href="/openapi.json"
              target="_blank"
              rel="noopener"
              className="font-medium text-indigo-600 underline underline-offset-2 hover:text-indigo-500 dark:text-indigo-400"
            >
              OpenAPI description (openapi.json)
            </a>
          </p>
        </section>

        <section>
          <h3 className="font-semibold">API token</h3>
          <p className="mt-1 text-zinc-600 dark:text-zinc-400">
            {hasToken
              ? 'This browser keeps an API token for this mediad.'
              : 'This browser keeps no API token.'}
          </p>
          <p className="mt-2">
            <button
              type="button"
              className="btn-secondary"
              onClick={() => {
                setHasToken(false);
                onClose();
                forgetToken();
              }}
            >
              Forget token
            </button>
          </p>
        </section>

        <div className="flex justify-end border-t border-zinc-200 pt-4 dark:border-zinc-800">
          <button type="button" className="btn-primary" onClick={onClose}>
            Close
          </button>
        </div>
      </div>
    </Modal>
  );
}
