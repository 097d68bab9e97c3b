// The page's views and the address-bar fragment that names them. Pure.
// (A fragment, not a path: /subscriptions, /cookies and /notifications are API routes.)

export type View = 'downloads' | 'subscriptions' | 'cookies' | 'notifications';

export const VIEWS: readonly { id: View; label: string }[] = [
  { id: 'downloads', label: 'Downloads' },
  { id: 'subscriptions', label: 'Subscriptions' },
  { id: 'cookies', label: 'Cookies' },
  { id: 'notifications', label: 'Notifications' },
];

/** The view a fragment names; null for any other fragment (e.g. "#main", the skip link). */
export function viewFromHash(hash: string): View | null {
  const name = hash.replace(/^#\/?/, '');
  if (name === '') return 'downloads';
  return VIEWS.some((v) => v.id === name) ? (name as View) : null;
}

export function hashFor(view: View): string {
  return `#${view}`;
}
