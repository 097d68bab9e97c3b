import { useRef, useState } from 'react';
import { deleteJob } from '../app/services';
import { Modal } from './Modal';

export interface DeleteTarget {
  jobId: string;
  title: string;
}

/** "Delete …?" with Keep (focused) and Delete: for jobs, subscriptions and cookie files. */
export function ConfirmDelete({
  title,
  name,
  consequence,
  onConfirm,
  onClose,
}: {
  title: string;
  name: string;
  consequence: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const keep = useRef<HTMLButtonElement>(null);
  const [busy, setBusy] = useState(false);
  const confirm = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      onClose();
    }
  };
  return (
    <Modal
      title={title}
      onClose={onClose}
      initialFocus={keep}
      description={
        <>
          <span className="block font-medium break-all text-zinc-800 dark:text-zinc-200">{name}</span>
          <span className="mt-1 block">{consequence}</span>
        </>
      }
    >
      <div className="flex flex-col-reverse gap-2 sm:flex-row sm:justify-end">
        <button ref={keep} type="button" className="btn-secondary" onClick={onClose}>
          Keep
        </button>
        <button type="button" className="btn-danger" onClick={confirm} disabled={busy}>
          Delete
        </button>
      </div>
    </Modal>
  );
}

export function DeleteDialog({ target, onClose }: { target: DeleteTarget; onClose: () => void }) {
  return (
    <ConfirmDelete
      title="Delete job?"
      name={target.title}
      consequence="The job and its files are removed from the server. This cannot be undone."
      onConfirm={() => deleteJob(target.jobId)}
      onClose={onClose}
    />
  );
}
