"""Whole messages on the wire: header, protocol header, payload, and the AES-CCM layer (Core spec §4.4, §4.8).

Pure functions over bytes and keys, so the known-answer vectors (tests/transport/test_wire.py) test them directly.
Sessions decide which key and nonce node id to use; this module only applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

from jfds_device.codec.message import MessageHeader, ProtocolHeader
from jfds_device.crypto.primitives import AEAD_MIC_LENGTH, aes_ccm_decrypt, aes_ccm_encrypt, message_nonce
from jfds_device.errors import LocalProtocolError, MessageDecodeError

__all__ = ["MAX_MESSAGE_SIZE", "DecodedMessage", "decode_header", "encode_message", "open_payload"]

# Messages over UDP are bounded by the IPv6 minimum MTU, 1280 bytes (Core spec §4.4.4, "Message Size
# Requirements"); like the CHIP SDK we apply the bound to the UDP payload.
MAX_MESSAGE_SIZE = 1280

_SECURITY_FLAGS_OFFSET = 3  # message flags (1) + session id (2), Core spec §4.4.1


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """A message after header parsing and (for secure sessions) decryption."""

    header: MessageHeader
    protocol_header: ProtocolHeader
    payload: bytes


def encode_message(
    header: MessageHeader,
    protocol_header: ProtocolHeader,
    payload: bytes,
    *,
    key: bytes | None = None,
    nonce_node_id: int = 0,
) -> bytes:
    """Encode a message; with ``key``, encrypt it (Core spec §4.8.1).

    The nonce is the security flags byte as sent, the counter and ``nonce_node_id`` (the sender's operational
    node id, 0 for PASE); the AAD is the whole message header as sent.
    """
    raw_header = header.encode()
    plaintext = protocol_header.encode() + payload
    if key is None:
        body = plaintext
    else:
        nonce = message_nonce(raw_header[_SECURITY_FLAGS_OFFSET], header.message_counter, nonce_node_id)
        body = aes_ccm_encrypt(key, nonce, plaintext, raw_header)
    data = raw_header + body
    if len(data) > MAX_MESSAGE_SIZE:
        raise LocalProtocolError(f"message is {len(data)} bytes; at most {MAX_MESSAGE_SIZE} fit a datagram")
    return data


def decode_header(data: bytes) -> tuple[MessageHeader, int]:
    """Parse the cleartext message header; raises MessageDecodeError."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise MessageDecodeError(f"datagram of {len(data)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return MessageHeader.decode(data)


def open_payload(
    data: bytes, header: MessageHeader, header_length: int, *, key: bytes | None = None, nonce_node_id: int = 0
) -> DecodedMessage:
    """Decrypt (with ``key``) and parse what follows the message header.

    Raises CryptoError for a MIC that does not verify and MessageDecodeError for a malformed protocol header.
    The AAD is ``data[:header_length]``, the header bytes exactly as received.
    """
    body = data[header_length:]
    if key is not None:
        if len(body) < AEAD_MIC_LENGTH:
            raise MessageDecodeError("secured message shorter than its MIC")
        nonce = message_nonce(data[_SECURITY_FLAGS_OFFSET], header.message_counter, nonce_node_id)
        body = aes_ccm_decrypt(key, nonce, body, data[:header_length])
    protocol_header, protocol_length = ProtocolHeader.decode(body)
    return DecodedMessage(header, protocol_header, body[protocol_length:])
