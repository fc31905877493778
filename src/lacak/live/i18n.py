"""The live page's words in Indonesian (the default) and English, and which one a visitor gets.

Every string the page shows lives here, the ones the browser needs again after an update too
(state labels, month names): the page hands those to its script in a JSON block, so a status
that changes over Server-Sent Events reads exactly like the one the server rendered.
"""

from __future__ import annotations

LANGS = ("id", "en")
DEFAULT = "id"
STATES = (
    "created",
    "finding_driver",
    "no_driver",
    "driver_assigned",
    "at_pickup",
    "picked_up",
    "in_transit",
    "on_hold",
    "returning",
    "delivered",
    "returned",
    "cancelled",
    "failed",
)
# "in" is the code Indonesian had before 1989; some old Android builds still send it.
_ALIASES = {"in": "id"}
# A header longer than any real browser sends is not worth parsing to the end.
_MAX_HEADER = 512

_ID: dict[str, str] = {
    "page.title": "Lacak pengiriman",
    "brand.home": "lacak, beranda",
    "lang.label": "Bahasa",
    "state.created": "Pesanan dibuat",
    "state.finding_driver": "Mencari driver",
    "state.no_driver": "Driver tidak ditemukan",
    "state.driver_assigned": "Driver menuju lokasi penjemputan",
    "state.at_pickup": "Driver tiba di lokasi penjemputan",
    "state.picked_up": "Paket sudah diambil",
    "state.in_transit": "Dalam perjalanan",
    "state.on_hold": "Pengiriman tertunda",
    "state.returning": "Sedang dikembalikan ke pengirim",
    "state.delivered": "Terkirim",
    "state.returned": "Dikembalikan ke pengirim",
    "state.cancelled": "Dibatalkan",
    "state.failed": "Pengiriman gagal",
    "hint.created": "Pesanan sudah kami terima dan sebentar lagi dicarikan driver.",
    "hint.finding_driver": "Kami sedang mencarikan driver terdekat untuk paket Anda.",
    "hint.no_driver": "Belum ada driver yang tersedia. Pengirim akan mencoba lagi.",
    "hint.driver_assigned": "Driver sudah ditemukan dan sedang menuju lokasi penjemputan.",
    "hint.at_pickup": "Driver sudah tiba dan sedang mengambil paket.",
    "hint.picked_up": "Paket sudah di tangan driver dan siap diantar.",
    "hint.in_transit": "Driver sedang mengantar paket ke alamat tujuan.",
    "hint.on_hold": "Pengiriman dihentikan sementara. Pengirim akan memberi kabar.",
    "hint.returning": "Paket sedang dibawa kembali ke pengirim.",
    "hint.delivered": "Paket sudah diterima. Terima kasih!",
    "hint.returned": "Paket sudah diterima kembali oleh pengirim.",
    "hint.cancelled": "Pengiriman ini dibatalkan.",
    "hint.failed": "Paket tidak dapat diantar. Hubungi pengirim untuk informasi lebih lanjut.",
    "status.note": "Keterangan",
    "status.updated": "Diperbarui",
    "progress.label": "Progres pengiriman",
    "progress.step": "{value} dari {max} tahap selesai",
    "conn.connecting": "Menghubungkan…",
    "conn.live": "Langsung",
    "conn.poll": "Memperbarui otomatis",
    "conn.retry": "Koneksi terputus, mencoba lagi…",
    "conn.done": "Status akhir",
    "noscript": "Muat ulang halaman ini untuk melihat status terbaru.",
    "map.heading": "Peta pengiriman",
    "map.label": "Peta rute dari {origin} ke {destination}",
    "map.origin": "Lokasi penjemputan: {name}",
    "map.destination": "Tujuan: {name}",
    "map.driver": "Posisi driver",
    "map.position": "Posisi driver diperbarui {time}",
    "map.no_position": "Posisi driver akan muncul di peta saat driver dalam perjalanan.",
    "map.legend.origin": "Penjemputan",
    "map.legend.destination": "Tujuan",
    "map.legend.driver": "Driver",
    "driver.heading": "Driver Anda",
    "driver.photo": "Foto {name}",
    "driver.phone": "Telepon",
    "driver.plate": "Nomor polisi",
    "timeline.heading": "Riwayat pengiriman",
    "timeline.empty": "Belum ada riwayat.",
    "places.heading": "Rute pengiriman",
    "places.origin": "Dijemput dari",
    "places.destination": "Diantar ke",
    "order.code": "Kode pelacakan",
    "order.id": "Nomor pesanan",
    "footer.expires": "Tautan ini berlaku sampai {time}.",
    "footer.privacy": "Halaman ini dibagikan oleh pengirim paket. Jangan bagikan tautannya ke orang lain.",
    "footer.powered": "Didukung oleh lacak",
    "months": "Jan Feb Mar Apr Mei Jun Jul Agu Sep Okt Nov Des",
    "gone.title": "Tautan sudah kedaluwarsa",
    "gone.text": "Pengiriman ini sudah lama selesai, jadi tautan pelacakannya tidak berlaku lagi. "
    "Hubungi pengirim jika Anda masih memerlukan bantuan.",
    "notfound.title": "Pengiriman tidak ditemukan",
    "notfound.text": "Kami tidak menemukan pengiriman untuk tautan ini. "
    "Periksa kembali tautan yang Anda terima dari pengirim.",
    "toomany.title": "Terlalu banyak permintaan",
    "toomany.text": "Halaman ini dibuka terlalu sering dalam waktu singkat. Tunggu sebentar, lalu coba lagi.",
    "toomany.retry": "Muat ulang",
}

_EN: dict[str, str] = {
    "page.title": "Track your delivery",
    "brand.home": "lacak, home",
    "lang.label": "Language",
    "state.created": "Order placed",
    "state.finding_driver": "Finding a driver",
    "state.no_driver": "No driver found",
    "state.driver_assigned": "Driver on the way to pickup",
    "state.at_pickup": "Driver at the pickup point",
    "state.picked_up": "Package picked up",
    "state.in_transit": "On the way",
    "state.on_hold": "Delivery on hold",
    "state.returning": "Returning to sender",
    "state.delivered": "Delivered",
    "state.returned": "Returned to sender",
    "state.cancelled": "Cancelled",
    "state.failed": "Delivery failed",
    "hint.created": "We have your order and will look for a driver shortly.",
    "hint.finding_driver": "We are looking for the nearest driver for your package.",
    "hint.no_driver": "No driver is available yet. The sender will try again.",
    "hint.driver_assigned": "A driver has been found and is heading to the pickup point.",
    "hint.at_pickup": "The driver has arrived and is collecting the package.",
    "hint.picked_up": "The driver has the package and is about to set off.",
    "hint.in_transit": "The driver is bringing the package to its destination.",
    "hint.on_hold": "The delivery is paused for now. The sender will keep you posted.",
    "hint.returning": "The package is being taken back to the sender.",
    "hint.delivered": "The package has been delivered. Thank you!",
    "hint.returned": "The package is back with the sender.",
    "hint.cancelled": "This delivery was cancelled.",
    "hint.failed": "The package could not be delivered. Please contact the sender.",
    "status.note": "Note",
    "status.updated": "Updated",
    "progress.label": "Delivery progress",
    "progress.step": "{value} of {max} steps done",
    "conn.connecting": "Connecting…",
    "conn.live": "Live",
    "conn.poll": "Updating automatically",
    "conn.retry": "Connection lost, retrying…",
    "conn.done": "Final status",
    "noscript": "Reload this page to see the latest status.",
    "map.heading": "Delivery map",
    "map.label": "Map of the route from {origin} to {destination}",
    "map.origin": "Pickup: {name}",
    "map.destination": "Destination: {name}",
    "map.driver": "Driver's position",
    "map.position": "Driver's position updated {time}",
    "map.no_position": "The driver's position shows on the map once they are on the way.",
    "map.legend.origin": "Pickup",
    "map.legend.destination": "Destination",
    "map.legend.driver": "Driver",
    "driver.heading": "Your driver",
    "driver.photo": "Photo of {name}",
    "driver.phone": "Phone",
    "driver.plate": "Plate number",
    "timeline.heading": "Delivery history",
    "timeline.empty": "No history yet.",
    "places.heading": "Route",
    "places.origin": "Picked up from",
    "places.destination": "Delivered to",
    "order.code": "Tracking code",
    "order.id": "Order number",
    "footer.expires": "This link works until {time}.",
    "footer.privacy": "The sender shared this page with you. Please do not pass the link on.",
    "footer.powered": "Powered by lacak",
    "months": "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec",
    "gone.title": "This link has expired",
    "gone.text": "This delivery finished a while ago, so its tracking link no longer works. "
    "Contact the sender if you still need help.",
    "notfound.title": "Delivery not found",
    "notfound.text": "We could not find a delivery for this link. Please check the link the sender gave you.",
    "toomany.title": "Too many requests",
    "toomany.text": "This page was opened too often in a short time. Wait a moment, then try again.",
    "toomany.retry": "Reload",
}

_MESSAGES = {"id": _ID, "en": _EN}


def _lang_of(tag: str) -> str | None:
    """`en-US` -> `en`, `in` -> `id`; None when the primary subtag is not one of ours."""
    primary = tag.strip().split("-", 1)[0].split("_", 1)[0].lower()
    primary = _ALIASES.get(primary, primary)
    return primary if primary in LANGS else None


def _quality(params: list[str]) -> float:
    """The `q` of one Accept-Language entry; a malformed one counts as not acceptable."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            # float() also takes "nan" and "inf", which no header means.
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def pick_language(query: str | None, accept_language: str | None) -> str:
    """`?lang=` wins when it names one of ours; then the best Accept-Language match; then `id`."""
    if query:
        chosen = _lang_of(query)
        if chosen:
            return chosen
    if not accept_language:
        return DEFAULT
    best, best_q = DEFAULT, 0.0
    for entry in accept_language[:_MAX_HEADER].split(","):
        tag, *params = entry.split(";")
        lang = _lang_of(tag)
        q = _quality(params)
        # Strictly greater: of equal weights the first listed wins, as the header's order means.
        if lang and q > best_q:
            best, best_q = lang, q
    return best


def messages(lang: str) -> dict[str, str]:
    """Every UI string for `lang` (an unknown one gets Indonesian); a copy, safe to change."""
    return dict(_MESSAGES.get(lang, _ID))
