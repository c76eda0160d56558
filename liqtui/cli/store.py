"""``liqtui store info``: what the local store holds."""

from __future__ import annotations

from .options import Exit, add_data_dir_args, error, open_store_readonly


def add_parser(sub) -> None:
    st = sub.add_parser("store", help="the local store: what it holds",
                        description="The local store of captured data.")
    ss = st.add_subparsers(dest="store_command", title="commands", metavar="COMMAND",
                           required=True)
    info = ss.add_parser(
        "info", help="per venue and symbol: bars, open-interest points, liquidations, span",
        description="What the store holds, per venue and symbol, and how big it is.")
    info.set_defaults(handler=cmd_store_info)
    info.add_argument("--json", action="store_true",
                      help='a JSON document: {"path", "bytes", "series": [{"venue", "symbol", '
                           '"bars", "open_interest", "liquidations", "first", "last"}…]} '
                           "(times in ms)")
    add_data_dir_args(info)

def cmd_store_info(args) -> int:
    try:
        store = open_store_readonly(args)
    except Exit as e:
        return e.status
    from ..store import StoreError

    with store:
        try:
            info = store.info()
        except StoreError as e:  # damaged past its header: found only when read
            return error(str(e))
    if args.json:
        import json

        print(json.dumps(info, indent=2))
        return 0
    from ..units import printable, utc

    if store.missing:
        print(printable(f"no store at {info['path']} yet (liqtui record creates it)"))
        return 0
    size = info["bytes"]
    print(printable(f"store {info['path']} · " + (f"{size / 1e6:,.1f} MB" if size >= 1e6 else
                                                  f"{size / 1e3:,.0f} kB")
                    + f" · {info['kind'] or 'empty'}"))
    rows = [("venue", "symbol", "bars", "open interest", "liquidations", "first", "last")]
    for s in info["series"]:
        rows.append((printable(s["venue"], False), printable(s["symbol"], False), f"{s['bars']:,}", f"{s['open_interest']:,}",
                     f"{s['liquidations']:,}", utc(s["first"]) if s["first"] else "-",
                     utc(s["last"]) if s["last"] else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.rjust(w) if 2 <= i <= 4 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0
