"""magiclink_core: passwordless email-link authentication, framework-agnostic.

from magiclink_core import MagicLinks, Settings
from magiclink_core.storage import MemoryStorage
from magiclink_core.mailers import MemoryMailer

links = MagicLinks(Settings(secret=..., base_url="https://app.example.com"),
                   storage=MemoryStorage(), mailer=MemoryMailer())
"""

from contextlib import suppress as _suppress

from .clients import ClientState as ClientState
from .context import attempt_channel as attempt_channel
from .domain.errors import AuthError as AuthError
from .domain.errors import ClientMismatchError as ClientMismatchError
from .domain.errors import ConfirmationCodeError as ConfirmationCodeError
from .domain.errors import ConflictError as ConflictError
from .domain.errors import EmailCodeError as EmailCodeError
from .domain.errors import ErrorCode as ErrorCode
from .domain.errors import IdentifierExistsError as IdentifierExistsError
from .domain.errors import IdentifierNotFoundError as IdentifierNotFoundError
from .domain.errors import InvalidEmailError as InvalidEmailError
from .domain.errors import InvalidRedirectError as InvalidRedirectError
from .domain.errors import InvalidRequestError as InvalidRequestError
from .domain.errors import InvalidStateError as InvalidStateError
from .domain.errors import LinkStillWorksError as LinkStillWorksError
from .domain.errors import MagicLinkError as MagicLinkError
from .domain.errors import MagicLinkErrorCode as MagicLinkErrorCode
from .domain.errors import MagicLinkExpiredError as MagicLinkExpiredError
from .domain.errors import MagicLinkFailedError as MagicLinkFailedError
from .domain.errors import MailDeliveryError as MailDeliveryError
from .domain.errors import NotAllowedError as NotAllowedError
from .domain.errors import NotFoundError as NotFoundError
from .domain.errors import RateLimitedError as RateLimitedError
from .domain.errors import ReverificationRequiredError as ReverificationRequiredError
from .domain.errors import StorageUnavailableError as StorageUnavailableError
from .domain.errors import TooManyConfirmationCodesError as TooManyConfirmationCodesError
from .domain.errors import UnauthenticatedError as UnauthenticatedError
from .domain.events import AuthEvent as AuthEvent
from .domain.events import Event as Event
from .domain.flows import verified_from_the_same_client as verified_from_the_same_client
from .domain.models import AttemptKind as AttemptKind
from .domain.models import Client as Client
from .domain.models import CrossDevicePolicy as CrossDevicePolicy
from .domain.models import EmailAddress as EmailAddress
from .domain.models import FailureReason as FailureReason
from .domain.models import FirstFactor as FirstFactor
from .domain.models import Link as Link
from .domain.models import Record as Record
from .domain.models import RequestInfo as RequestInfo
from .domain.models import Session as Session
from .domain.models import SessionStatus as SessionStatus
from .domain.models import SignIn as SignIn
from .domain.models import SignInStatus as SignInStatus
from .domain.models import SignUp as SignUp
from .domain.models import SignUpStatus as SignUpStatus
from .domain.models import Strategy as Strategy
from .domain.models import User as User
from .domain.models import Verification as Verification
from .domain.models import VerificationStatus as VerificationStatus
from .domain.redirects import origin_of as origin_of
from .domain.settings import Settings as Settings
from .domain.tokens import is_link_token as is_link_token
from .emails import EmailRenderer as EmailRenderer
from .links import LinkPreview as LinkPreview
from .links import LinkResult as LinkResult
from .log_redaction import TokenRedactingFilter as TokenRedactingFilter
from .ports import Clock as Clock
from .ports import EmailMessage as EmailMessage
from .ports import Mailer as Mailer
from .ports import Notifier as Notifier
from .ports import Storage as Storage
from .ports import SystemClock as SystemClock
from .service import MAX_WAIT as MAX_WAIT
from .service import MagicLinks as MagicLinks

__all__ = [
    "MAX_WAIT",
    "AttemptKind",
    "AuthError",
    "AuthEvent",
    "Client",
    "ClientMismatchError",
    "ClientState",
    "Clock",
    "ConfirmationCodeError",
    "ConflictError",
    "CrossDevicePolicy",
    "EmailAddress",
    "EmailCodeError",
    "EmailMessage",
    "EmailRenderer",
    "ErrorCode",
    "Event",
    "FailureReason",
    "FirstFactor",
    "IdentifierExistsError",
    "IdentifierNotFoundError",
    "InvalidEmailError",
    "InvalidRedirectError",
    "InvalidRequestError",
    "InvalidStateError",
    "Link",
    "LinkPreview",
    "LinkResult",
    "LinkStillWorksError",
    "MagicLinkError",
    "MagicLinkErrorCode",
    "MagicLinkExpiredError",
    "MagicLinkFailedError",
    "MagicLinks",
    "MailDeliveryError",
    "Mailer",
    "NotAllowedError",
    "NotFoundError",
    "Notifier",
    "RateLimitedError",
    "Record",
    "RequestInfo",
    "ReverificationRequiredError",
    "Session",
    "SessionStatus",
    "Settings",
    "SignIn",
    "SignInStatus",
    "SignUp",
    "SignUpStatus",
    "Storage",
    "StorageUnavailableError",
    "Strategy",
    "SystemClock",
    "TokenRedactingFilter",
    "TooManyConfirmationCodesError",
    "UnauthenticatedError",
    "User",
    "Verification",
    "VerificationStatus",
    "attempt_channel",
    "is_link_token",
    "origin_of",
    "verified_from_the_same_client",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("magiclink_core."):
        with _suppress(AttributeError, TypeError):
            _obj.__module__ = "magiclink_core"
