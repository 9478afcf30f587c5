"""How the broker words a failed CURVE handshake: both ways a plain peer shows up say so."""

import errno

import zmq

from broker.zap import handshake_failure


def test_a_mechanism_mismatch_says_not_curve() -> None:
    reason = handshake_failure(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
    assert "not CURVE" in reason


def test_a_peer_hanging_up_mid_handshake_names_both_causes_and_the_errno() -> None:
    """An admitted CLI that times out mid-handshake hangs up too: not only intruders do."""
    for code in (errno.EPIPE, errno.ECONNRESET):
        reason = handshake_failure(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, code)
        assert "not CURVE" in reason and "gave up waiting" in reason and errno.errorcode[code] in reason


def test_any_other_failure_keeps_the_numbers_for_a_bug_report() -> None:
    reason = handshake_failure(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, errno.ENOMEM)
    assert str(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL) in reason and "ENOMEM" in reason
    assert "not CURVE" not in reason
