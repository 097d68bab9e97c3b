import { useRef, useState } from 'react';
import { deleteJob } from '../app/services';
import { Modal } from './Modal';

export interface DeleteTarget {
  jobId: string;
  title: string;
}

export function DeleteDialog({ target, onClose }: { target: DeleteTarget; onClose: () => void }) {
  const keep = useRef<HTMLButtonElement>(null);
  const [busy, setBusy] = useState(false);
  const confirm = async () => {
    setBusy(true);
    await deleteJob(target.jobId);
    onClose();
  };
  return (
    <Modal
      title="Delete job?"
      onClose={onClose}
      initialFocus={keep}
      description={
        <>
          <span className="block font-medium break-all text-zinc-800 dark:text-zinc-200">{target.title}</span>
          <span className="mt-1 block">The job and its files are removed from the server. This cannot be undone.</span>
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
