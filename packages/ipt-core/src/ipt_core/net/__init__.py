"""Outbound connections: which destinations the service may reach (SSRF guard).

The names below are re-exported from `destinations.py` and `posts.py` (the `X as X` form
marks them public).
"""

from ipt_core.net.destinations import DestinationPolicy as DestinationPolicy
from ipt_core.net.destinations import DestinationRefused as DestinationRefused
from ipt_core.net.destinations import GuardedTransport as GuardedTransport
from ipt_core.net.destinations import check_destination as check_destination
from ipt_core.net.destinations import guarded_client as guarded_client
from ipt_core.net.destinations import redact_userinfo as redact_userinfo
from ipt_core.net.posts import Answer as Answer
from ipt_core.net.posts import BrokenAnswer as BrokenAnswer
from ipt_core.net.posts import PostClient as PostClient
