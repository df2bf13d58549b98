"""Optional password gate for sharing the dashboard on a network; off unless a password is configured.

The password comes from ``CARTOONKIT_DASHBOARD_PASSWORD`` or, failing that, ``password`` in Streamlit's secrets
(``.streamlit/secrets.toml``). It is a speed bump for a trusted network, not user management: one shared password,
remembered per browser session.
"""

from __future__ import annotations

import hmac
import os

PASSWORD_ENV = "CARTOONKIT_DASHBOARD_PASSWORD"
UNLOCKED_KEY = "gate_unlocked"


def configured_password(st=None) -> str | None:
    """The password to ask for, or None when the gate is off."""
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if st is None:
        return None
    try:  # without any secrets.toml, st.secrets raises (StreamlitSecretNotFoundError, a FileNotFoundError)
        password = st.secrets.get("password")
    except (FileNotFoundError, KeyError, ValueError):
        return None
    return str(password) if password else None


def matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so the time taken does not tell how much of a guess was right."""
    return hmac.compare_digest(given.encode(), expected.encode())


def unlocked(st) -> bool:
    """True when the page may be drawn; otherwise draws only the password field (and an error for a wrong one)."""
    expected = configured_password(st)
    if expected is None or st.session_state.get(UNLOCKED_KEY):
        return True
    st.title("cartoonkit")
    given = st.text_input("Password", type="password", key="gate_password")
    if given:
        if matches(given, expected):
            st.session_state[UNLOCKED_KEY] = True
            st.rerun()  # draw the app without the password field
        st.error("Wrong password.")
    return False
