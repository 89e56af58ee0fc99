import { review, type AdmissionRequest, type InjectConfig, type Review } from './inject';

/** What one POST to the webhook path answers, and how the review went (for metrics and logs). */
export interface AdmissionAnswer {
  status: number;
  body: string;
  contentType: string;
  /** Undefined when the body was not an AdmissionReview (answered 400). */
  review?: Review & { uid: string; namespace?: string | undefined; name?: string | undefined };
}

const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';

/**
 * Answers an admission.k8s.io/v1 AdmissionReview (the request body, not yet parsed): allowed with a
 * JSONPatch when the pod is routed, allowed unchanged when it is left alone, denied (code 400, the
 * reason as message) when its label or annotation is not a boolean. A body that is not an
 * AdmissionReview gets 400 and one line saying what is wrong.
 */
export function answerAdmission(body: Buffer, cfg: InjectConfig): AdmissionAnswer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return badRequest('the body is not JSON: send an admission.k8s.io/v1 AdmissionReview');
  }
  const envelope = parsed as { apiVersion?: unknown; kind?: unknown; request?: AdmissionRequest } | null;
  if (envelope?.apiVersion !== 'admission.k8s.io/v1' || envelope.kind !== 'AdmissionReview') {
    return badRequest(
      'expected apiVersion admission.k8s.io/v1, kind AdmissionReview (set admissionReviewVersions: [v1])',
    );
  }
  const req = envelope.request;
  if (typeof req?.uid !== 'string' || req.uid === '')
    return badRequest('the AdmissionReview has no request.uid');
  const outcome = review(req, cfg);
  const response: Record<string, unknown> = { uid: req.uid, allowed: outcome.result !== 'rejected' };
  if (outcome.result === 'mutated') {
    response['patchType'] = 'JSONPatch';
    response['patch'] = Buffer.from(JSON.stringify(outcome.patch)).toString('base64');
  }
  if (outcome.result === 'rejected') {
    response['status'] = { code: 400, reason: 'BadRequest', message: outcome.message };
  }
  const pod = req.object as { metadata?: { name?: string; generateName?: string } } | undefined;
  return {
    status: 200,
    contentType: JSON_TYPE,
    body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }),
    review: {
      ...outcome,
      uid: req.uid,
      namespace: req.namespace,
      name: pod?.metadata?.name || pod?.metadata?.generateName,
    },
  };
}

function badRequest(message: string): AdmissionAnswer {
  return { status: 400, contentType: TEXT_TYPE, body: `${message}\n` };
}
