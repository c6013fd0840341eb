import builtins
import errno

import pytest

import socket2
from socket2.errors import err_name, os_error


def test_error_is_oserror_with_err_and_errno():
    e = socket2.Error("closed", "socket is closed")
    assert isinstance(e, OSError)
    assert e.err == "closed"
    assert e.errno is None
    assert "socket is closed" in str(e)


def test_timeout_error_is_both():
    e = socket2.TimeoutError()
    assert isinstance(e, socket2.Error)
    assert isinstance(e, builtins.TimeoutError)
    assert e.err == "timeout"


def test_errno_names():
    assert err_name(errno.ECONNREFUSED) == "connection_refused"
    assert err_name(errno.ECONNRESET) == "connection_reset"
    assert err_name(errno.EADDRINUSE) == "address_already_in_use"
    assert err_name(errno.EACCES) == "access_denied"
    assert err_name(errno.EPERM) == "access_denied"
    assert err_name(errno.EPIPE) == "broken_pipe"
    assert err_name(errno.ENOSPC) == "enospc"   # unnamed: the errno symbol


def test_os_error_message_and_class():
    e = os_error(errno.ECONNREFUSED, "connect to 127.0.0.1:1")
    assert type(e) is socket2.Error
    assert e.errno == errno.ECONNREFUSED
    assert "connect to 127.0.0.1:1" in str(e) and "refused" in str(e)
    assert isinstance(os_error(errno.ETIMEDOUT, "x"), socket2.TimeoutError)


@pytest.mark.parametrize("code", [errno.ECONNRESET, errno.ETIMEDOUT,
                                  errno.EPIPE, 99999])
def test_os_error_is_what_the_constructor_makes(code):
    # os_error builds its exception without Error.__init__ (per reset
    # connection): it must be the very same as the constructor's.
    for _ in range(2):                    # made, then from the cache
        e = os_error(code, "recv")
        made = type(e)(e.err, e.strerror, code)
        assert type(e) in (socket2.Error, socket2.TimeoutError)
        assert (e.args, e.errno, e.strerror, e.err, str(e), repr(e)) == \
            (made.args, made.errno, made.strerror, made.err, str(made),
             repr(made))
        assert e.strerror.startswith("recv: ")
        assert os_error(code, "recv") is not e        # a fresh one each time


def test_error_pickles():
    import pickle
    e = pickle.loads(pickle.dumps(os_error(errno.EPIPE, "send")))
    assert e.err == "broken_pipe" and e.errno == errno.EPIPE
