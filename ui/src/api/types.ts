// Names for the generated OpenAPI types (src/api/schema.d.ts is generated from
// ../mediad/openapi.yaml by `npm run gen`; it is not committed).
import type { components, paths } from './schema';

type S = components['schemas'];

export type Job = S['Job'];
export type JobPage = S['JobPage'];
export type NewDownload = S['NewDownload'];
export type Created = S['Created'];
export type FileList = S['FileList'];
export type FileEntry = S['FileEntry'];
export type Health = S['Health'];
export type Check = S['Check'];
export type Detection = S['Detection'];
export type TwitterTarget = S['TwitterTarget'];
export type ApiErrorBody = S['Error'];
export type JobType = S['JobType'];
export type Status = S['Status'];
export type Stage = S['Stage'];
export type YtdlpOptions = S['YtdlpOptions'];
export type FfmpegOptions = S['FfmpegOptions'];
export type TwitterOptions = S['TwitterOptions'];
export type JobOptions = S['JobOptions'];

export type ProgressEvent = S['ProgressEvent'];
export type JobUpdateEvent = S['JobUpdateEvent'];
export type CompletedEvent = S['CompletedEvent'];
export type FailedEvent = S['FailedEvent'];

/** The query of `GET /downloads`, as the spec has it. */
export type ListQuery = NonNullable<paths['/downloads']['get']['parameters']['query']>;

/** The actions of `POST /downloads/{jobId}/{action}`. */
export type Action = 'cancel' | 'pause' | 'resume' | 'retry' | 'stop';

export type Subscription = S['Subscription'];
export type SubscriptionList = S['SubscriptionList'];
/** The generated type makes the fields with a default required: they are optional to send. */
type SubscriptionDefaults = 'maxItems' | 'backfill' | 'enabled';
export type NewSubscription = Omit<S['NewSubscription'], SubscriptionDefaults> &
  Partial<Pick<S['NewSubscription'], SubscriptionDefaults>>;
export type SubscriptionPatch = S['SubscriptionPatch'];
export type CheckRecord = S['CheckRecord'];
export type CheckList = S['CheckList'];
export type CookieFile = S['CookieFile'];
export type CookieFileList = S['CookieFileList'];
export type Delivery = S['Delivery'];
export type DeliveryPage = S['DeliveryPage'];
export type DeliveryStatus = S['DeliveryStatus'];
export type NotifyEvent = S['NotifyEvent'];
export type Target = S['Target'];
export type TargetList = S['TargetList'];
export type SubscriptionDeletedEvent = S['SubscriptionDeletedEvent'];
