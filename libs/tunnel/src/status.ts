/**
 * A Kubernetes `Status` failure as a complete raw HTTP/1.1 response that closes the connection, for
 * the tunnel's ends that answer a client themselves (kubectl prints the message). `statusText` is
 * the status line's phrase; by default the Status reason.
 */
export function statusResponse(code: number, reason: string, message: string, statusText = reason): string {
  const body = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    code,
    reason,
    message,
  });
  return (
    `HTTP/1.1 ${code} ${statusText}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}
