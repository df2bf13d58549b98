"""Live page: the webcam cartoonized in real time in the browser (streamlit-webrtc), with its frame rate shown.

The browser sends its camera over WebRTC to this server; :class:`~.live.LiveCartoonizer` cartoonizes the newest
frame, smooths it against the last one and sends it back. On a CPU the resolution starts at 320 px and adapts
to keep up; on a GPU it may climb to the full ladder. ``streamlit-webrtc`` is an optional extra
(``pip install 'cartoonkit[live]'``); without it the page says so and the rest of the dashboard is unaffected.

No STUN or TURN server is configured: the browser and this server find each other on their own addresses (the
same machine or network). Set ``CARTOONKIT_LIVE_ICE_SERVERS`` to a JSON list of ICE servers for anything else.
"""

from __future__ import annotations

import json
import os

from ..run_options import VideoOptions
from . import common, live

STATS_EVERY_S = 1.0
ICE_ENV = "CARTOONKIT_LIVE_ICE_SERVERS"
LIVE_KEY = "live_cartoonizer"


def ice_servers() -> list:
    try:
        servers = json.loads(os.environ.get(ICE_ENV, "[]"))
    except ValueError:
        return []
    return servers if isinstance(servers, list) else []


def render(st, settings: common.Settings) -> None:
    st.title("Live")
    st.caption("Your camera, cartoonized as you move. Press START and allow the camera; frames go to this server "
               "and come back as cartoons.")
    try:
        import av
        from streamlit_webrtc import WebRtcMode, webrtc_streamer
    except ImportError as exc:
        st.error(f"The Live page needs streamlit-webrtc ({exc}): pip install 'cartoonkit[live]'")
        return

    on_gpu = settings.engine_options.device.startswith("cuda")
    left, middle, right = st.columns(3)
    start_resolution = left.select_slider("Start resolution (px)", live.LADDER, value=512 if on_gpu else 320,
                                          key="live_resolution")
    adaptive = middle.toggle("Adapt the resolution to keep up", value=True, key="live_adaptive")
    # The clip's smoothing setting, declared once (VideoOptions.temporal); its own key: the Live page's value.
    temporal = common.draw_settings(right, VideoOptions, {}, state=st.session_state, only=("temporal",),
                                    key_prefix="live_")["temporal"]
    wanted_fps = 15 if on_gpu else 8
    try:
        cartoonizer = common.load_cartoonizer(settings.model, settings.engine_options)
    except Exception as exc:  # a missing model or device: say so, keep the page
        st.error(str(exc))
        return
    # One per viewer, made again when its settings change (the stream then restarts from fresh statistics).
    wanted = (settings.model, settings.config, settings.engine_options, start_resolution, adaptive, temporal)
    held = st.session_state.get(LIVE_KEY)
    if held is None or held[0] != wanted:
        processor = live.LiveCartoonizer(cartoonizer, settings.config, resolution=start_resolution,
                                         adaptive=adaptive, temporal=temporal, budget_s=1 / wanted_fps,
                                         lock=common.ENGINE_QUEUE,
                                         max_resolution=live.LADDER[-1] if on_gpu else 512)
        st.session_state[LIVE_KEY] = held = (wanted, processor)
    processor = held[1]

    async def frames_callback(frames):
        import asyncio

        # The engine's work runs off the WebRTC event loop, which must keep serving the connection.
        rgb = [frame.to_ndarray(format="rgb24") for frame in frames]
        cartoon = await asyncio.get_running_loop().run_in_executor(None, processor.process_queued, rgb)
        out = av.VideoFrame.from_ndarray(cartoon, format="rgb24")
        out.pts, out.time_base = frames[-1].pts, frames[-1].time_base
        return [out]

    try:
        context = webrtc_streamer(key="live", mode=WebRtcMode.SENDRECV,
                                  rtc_configuration={"iceServers": ice_servers()},
                                  media_stream_constraints={"video": True, "audio": False},
                                  queued_video_frames_callback=frames_callback, async_processing=True)
    except Exception as exc:  # noqa: BLE001 (no Streamlit server behind this run, e.g. AppTest: keep the page)
        st.error(f"The live stream cannot start here: {type(exc).__name__}: {exc}")
        return

    @st.fragment(run_every=STATS_EVERY_S if context.state.playing else None)
    def stats() -> None:
        snapshot = processor.snapshot()
        if snapshot.processed:
            st.markdown(f"**Live:** {snapshot.line()}")
        elif context.state.playing:
            st.caption("Waiting for the first frames...")
        else:
            st.caption(f"Target {wanted_fps} frames per second; the resolution adapts between "
                       f"{live.LADDER[0]} and {processor.max_resolution} px.")

    stats()
