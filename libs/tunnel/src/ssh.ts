/**
 * The SSH algorithms both ends offer (ssh2's `algorithms`). AES-GCM first: Node's OpenSSL does it
 * with AES-NI; chacha20-poly1305 as the fallback for CPUs without it. Host keys are ed25519.
 */
export const SSH_ALGORITHMS = {
  cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com'],
  kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org', 'ecdh-sha2-nistp256'],
  serverHostKey: ['ssh-ed25519'],
  compress: ['none'],
};
