"""What the FIX initiator (:mod:`.fix_broker`) and the simulator (:mod:`.fix_acceptor`) share.

* :func:`load_quickfix` imports the optional ``quickfix`` package (extra ``fix``) or raises
  :class:`~pipelines.execution.broker.BrokerUnavailableError` saying how to install it.
* :func:`session_settings` writes a QuickFIX settings file for one FIX 4.4 session:
  ``FileStore`` (sequence numbers and sent messages survive restarts), the FIX 4.4 data
  dictionary shipped with the wheel (``<prefix>/share/quickfix/FIX44.xml``) plus our
  user-defined TargetStrategy value (:func:`session_dictionary`), no resets on
  logon/logout/disconnect (gaps are recovered with ResendRequest), a non-stop session.
* The wire vocabulary: tag numbers, OrdStatus/ExecType codes and the **algorithm
  instructions** — FIX 4.4 ``TargetStrategy`` (847: 1 = VWAP, 2 = participate/POV,
  1001 = TWAP, a bilaterally agreed user-defined value ≥ 1000), ``TargetStrategyParameters``
  (848: ``StartTime=…;EndTime=…;Urgency=…``) and ``ParticipationRate`` (849, a fraction).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pipelines.execution.broker import Algo, AlgoInstruction, BrokerUnavailableError, OrderStatus

BEGIN_STRING = "FIX.4.4"


class Tag:
    """FIX 4.4 tag numbers used here."""

    ACCOUNT = 1
    AVG_PX = 6
    CL_ORD_ID = 11
    COMMISSION = 12
    COMM_TYPE = 13
    CUM_QTY = 14
    CURRENCY = 15
    EXEC_ID = 17
    HANDL_INST = 21
    LAST_PX = 31
    LAST_QTY = 32
    MSG_TYPE = 35
    ORDER_ID = 37
    ORDER_QTY = 38
    ORD_STATUS = 39
    ORD_TYPE = 40
    ORIG_CL_ORD_ID = 41
    POSS_DUP_FLAG = 43
    PRICE = 44
    SIDE = 54
    SYMBOL = 55
    TEXT = 58
    TIME_IN_FORCE = 59
    TRANSACT_TIME = 60
    TRADE_DATE = 75
    TEST_REQ_ID = 112
    ORD_REJ_REASON = 103
    CXL_REJ_REASON = 102
    CXL_REJ_RESPONSE_TO = 434
    EXEC_TYPE = 150
    LEAVES_QTY = 151
    SUBSCRIPTION_REQUEST_TYPE = 263
    PARTY_ID_SOURCE = 447
    PARTY_ID = 448
    PARTY_ROLE = 452
    NO_PARTY_IDS = 453
    ACCOUNT_TYPE = 581
    NO_POSITIONS = 702
    POS_TYPE = 703
    LONG_QTY = 704
    SHORT_QTY = 705
    POS_AMT_TYPE = 707
    POS_AMT = 708
    POS_REQ_ID = 710
    CLEARING_BUSINESS_DATE = 715
    POS_MAINT_RPT_ID = 721
    POS_REQ_TYPE = 724
    TOTAL_NUM_POS_REPORTS = 727
    POS_REQ_RESULT = 728
    POS_REQ_STATUS = 729
    SETTL_PRICE = 730
    SETTL_PRICE_TYPE = 731
    PRIOR_SETTL_PRICE = 734
    NO_POS_AMT = 753
    TARGET_STRATEGY = 847
    TARGET_STRATEGY_PARAMETERS = 848
    PARTICIPATION_RATE = 849
    CASH_OUTSTANDING = 901
    COLL_RPT_ID = 908
    COLL_INQUIRY_ID = 909
    COLL_STATUS = 910
    TOT_NUM_REPORTS = 911
    COLL_INQUIRY_STATUS = 945
    COLL_INQUIRY_RESULT = 946


class MsgType:
    HEARTBEAT = "0"
    TEST_REQUEST = "1"
    REJECT = "3"
    LOGON = "A"
    EXECUTION_REPORT = "8"
    ORDER_CANCEL_REJECT = "9"
    NEW_ORDER_SINGLE = "D"
    ORDER_CANCEL_REQUEST = "F"
    ORDER_STATUS_REQUEST = "H"
    REQUEST_FOR_POSITIONS = "AN"
    REQUEST_FOR_POSITIONS_ACK = "AO"
    POSITION_REPORT = "AP"
    COLLATERAL_REPORT = "BA"
    COLLATERAL_INQUIRY = "BB"
    COLLATERAL_INQUIRY_ACK = "BG"


class ExecType:
    NEW = "0"
    CANCELED = "4"
    REJECTED = "8"
    EXPIRED = "C"
    TRADE = "F"
    ORDER_STATUS = "I"


ORD_STATUS_CODE: dict[OrderStatus, str] = {
    OrderStatus.NEW: "0",
    OrderStatus.PARTIALLY_FILLED: "1",
    OrderStatus.FILLED: "2",
    OrderStatus.CANCELLED: "4",
    OrderStatus.REJECTED: "8",
    OrderStatus.PENDING_NEW: "A",
    OrderStatus.EXPIRED: "C",
}
ORD_STATUS_OF_CODE = {v: k for k, v in ORD_STATUS_CODE.items()}
ORD_REJ_UNKNOWN_ORDER = "5"
COLL_INQUIRY_REJECTED = "4"  # CollInquiryStatus (945)
COLL_INQUIRY_NOT_SUPPORTED = "8"  # CollInquiryResult (946): inquiry type not supported
SIDE_CODE = {"buy": "1", "sell": "2"}
SIDE_OF_CODE = {"1": "buy", "2": "sell"}

# TargetStrategy (847): FIX 4.4 defines 1 = VWAP and 2 = Participate; ≥ 1000 is user-defined.
STRATEGY_CODE = {Algo.VWAP: "1", Algo.POV: "2", Algo.TWAP: "1001"}
ALGO_OF_STRATEGY = {v: k for k, v in STRATEGY_CODE.items()}
_PARAM_KEYS = {"start": "StartTime", "end": "EndTime", "urgency": "Urgency"}


def algo_fields(algo: AlgoInstruction) -> dict[int, str]:
    """The 847/848/849 fields for ``algo`` (empty for a plain order)."""
    if algo.algo is Algo.NONE:
        return {}
    out = {Tag.TARGET_STRATEGY: STRATEGY_CODE[algo.algo]}
    params = ";".join(f"{_PARAM_KEYS[k]}={v}" for k, v in algo.params().items() if k in _PARAM_KEYS)
    if params:
        out[Tag.TARGET_STRATEGY_PARAMETERS] = params
    if algo.participation is not None:
        out[Tag.PARTICIPATION_RATE] = f"{algo.participation:g}"
    return out


def algo_from_fields(fields: dict[int, str]) -> AlgoInstruction:
    """Inverse of :func:`algo_fields` (unknown strategies raise ``ValueError``)."""
    code = fields.get(Tag.TARGET_STRATEGY)
    if code is None:
        return AlgoInstruction(algo=Algo.NONE)
    if code not in ALGO_OF_STRATEGY:
        raise ValueError(f"unsupported TargetStrategy(847)={code}")
    params: dict[str, str] = {}
    for part in fields.get(Tag.TARGET_STRATEGY_PARAMETERS, "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            params[k.strip()] = v.strip()
    rate = fields.get(Tag.PARTICIPATION_RATE)
    return AlgoInstruction(
        algo=ALGO_OF_STRATEGY[code],
        start=params.get("StartTime"),
        end=params.get("EndTime"),
        urgency=params.get("Urgency"),
        participation=float(rate) if rate else None,
    )


def load_quickfix() -> ModuleType:
    """The ``quickfix`` module, or :class:`BrokerUnavailableError` explaining the fix."""
    try:
        import quickfix
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BrokerUnavailableError(
            "the FIX broker needs QuickFIX: pip install '.[fix]' "
            "(or .ci/fix-wheel.sh, which installs the cached wheel)"
        ) from exc
    return quickfix


def quickfix_available() -> bool:
    """True when ``quickfix`` imports."""
    try:
        load_quickfix()
    except BrokerUnavailableError:
        return False
    return True


def spec_path() -> Path | None:
    """The FIX 4.4 data dictionary installed with the quickfix wheel, if present."""
    for root in (sys.prefix, sys.base_prefix):
        p = Path(root) / "share" / "quickfix" / "FIX44.xml"
        if p.exists():
            return p
    return None


# Bilaterally agreed additions to the FIX 4.4 dictionary: user-defined enum values.
USER_DEFINED_VALUES: dict[int, dict[str, str]] = {Tag.TARGET_STRATEGY: {"1001": "TWAP"}}


def session_dictionary(data_dir: Path) -> Path | None:
    """The session's data dictionary: the wheel's FIX44.xml plus :data:`USER_DEFINED_VALUES`
    (QuickFIX rejects enum values the dictionary does not list), written to ``data_dir``.
    ``None`` when the wheel ships no dictionary (then messages are not validated)."""
    spec = spec_path()
    if spec is None:
        return None
    text = spec.read_text()
    for tag, values in USER_DEFINED_VALUES.items():
        head = f"<field number='{tag}' "
        start = text.index(head)
        end = text.index("</field>", start)
        extra = "".join(
            f"   <value enum='{v}' description='{d}' />\n"
            for v, d in values.items()
            if f"enum='{v}'" not in text[start:end]
        )
        line = text.rindex("\n", start, end) + 1  # the line holding </field>
        text = text[:line] + extra + text[line:]
    out = data_dir / "FIX44.xml"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out


def session_settings(
    path: Path,
    role: Literal["initiator", "acceptor"],
    *,
    sender: str,
    target: str,
    port: int,
    host: str = "127.0.0.1",
    heartbeat: int = 30,
    reconnect_interval: int = 1,
    data_dir: Path,
) -> Path:
    """Write the settings file for one FIX 4.4 session at ``path`` and return it.

    ``data_dir`` holds the ``store`` (sequence numbers, sent messages) and ``log`` folders;
    reusing it continues the session where the last process left it.
    """
    store, logs = data_dir / "store", data_dir / "log"
    store.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    spec = session_dictionary(data_dir)
    lines = [
        "[DEFAULT]",
        f"ConnectionType={role}",
        f"FileStorePath={store}",
        f"FileLogPath={logs}",
        "NonStopSession=Y",
        "ResetOnLogon=N",
        "ResetOnLogout=N",
        "ResetOnDisconnect=N",
        "PersistMessages=Y",
        "ValidateUserDefinedFields=N",
        "AllowUnknownMsgFields=Y",
        "CheckLatency=N",
        f"UseDataDictionary={'Y' if spec else 'N'}",
    ]
    if spec:
        lines.append(f"DataDictionary={spec}")
    if role == "initiator":
        lines += [
            f"SocketConnectHost={host}",
            f"SocketConnectPort={port}",
            f"HeartBtInt={heartbeat}",
            f"ReconnectInterval={reconnect_interval}",
        ]
    else:
        lines += [f"SocketAcceptPort={port}", "SocketReuseAddress=Y"]
    lines += ["", "[SESSION]", f"BeginString={BEGIN_STRING}"]
    lines += [f"SenderCompID={sender}", f"TargetCompID={target}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def utc_timestamp(ts: dt.datetime | None = None) -> str:
    """FIX UTCTimestamp with milliseconds."""
    t = (ts or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return t.strftime("%Y%m%d-%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def parse_utc_timestamp(value: str) -> dt.datetime:
    """Inverse of :func:`utc_timestamp` (with or without fractional seconds)."""
    fmt = "%Y%m%d-%H:%M:%S.%f" if "." in value else "%Y%m%d-%H:%M:%S"
    return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)


def fix_date(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def parse_fix_date(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y%m%d").date()


def new_message(qf: Any, msg_type: str) -> Any:
    """An empty FIX 4.4 message of ``msg_type``."""
    msg = qf.Message()
    msg.getHeader().setField(qf.BeginString(BEGIN_STRING))
    msg.getHeader().setField(qf.MsgType(msg_type))
    return msg


def set_fields(msg: Any, fields: dict[int, str]) -> None:
    for tag, value in fields.items():
        msg.setField(tag, value)


def get(msg: Any, tag: int, default: str | None = None) -> str | None:
    """Field ``tag`` of ``msg`` as a string, or ``default``."""
    return str(msg.getField(tag)) if msg.isSetField(tag) else default


def msg_type(qf: Any, msg: Any) -> str:
    return str(msg.getHeader().getField(Tag.MSG_TYPE))


def party_group(qf: Any, party: str) -> Any:
    """One Parties (453) entry: ``party`` as the executing firm (PartyRole 1, source D)."""
    group = qf.Group(Tag.NO_PARTY_IDS, Tag.PARTY_ID)
    group.setField(Tag.PARTY_ID, party)
    group.setField(Tag.PARTY_ID_SOURCE, "D")
    group.setField(Tag.PARTY_ROLE, "1")
    return group


__all__ = [
    "BEGIN_STRING",
    "ExecType",
    "MsgType",
    "Tag",
    "algo_fields",
    "algo_from_fields",
    "load_quickfix",
    "quickfix_available",
    "session_settings",
    "spec_path",
]
