"""A local web page that tells the emotions of the faces in a photo.

    python demo.py                              # the pretrained model
    python demo.py --model cbam_int8.tflite --port 8080
    python demo.py --host 0.0.0.0               # reachable from other machines

Open the address it prints, then upload a photo or take a webcam snapshot:
the page shows the photo with each face boxed and labelled, each face's
seven probabilities, and for a `.keras` model the Grad-CAM map of each
face's predicted class. Uploads are processed in memory and dropped with the
answer. Ctrl+C stops the server.
"""

import argparse
import sys

from fer_keras import cli


def parse_args(argv: list[str], prog: str = "demo.py") -> argparse.Namespace:
    from fer_keras import demo, detectors

    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_backend_argument(parser)
    parser.add_argument("--model", metavar="PATH",
                        help=".keras file, or an export of one from export.py (.tflite, "
                        ".onnx, SavedModel folder); Grad-CAM maps need the .keras file "
                        "(default: the pretrained model)")
    parser.add_argument("--host", default=demo.DEFAULT_HOST,
                        help="address to listen on (default %(default)s: this computer "
                        "only); 0.0.0.0 shares the demo with every machine that can reach "
                        "this one")
    parser.add_argument("--port", type=cli.port_number, default=demo.DEFAULT_PORT,
                        help="port to listen on (default %(default)s; 0: any free port)")
    parser.add_argument("--max-upload-mb", type=cli.positive_float,
                        default=demo.DEFAULT_MAX_UPLOAD_BYTES / 2**20, metavar="MB",
                        help="largest photo accepted, in MB (default %(default)g)")
    parser.add_argument("--detector", choices=detectors.DETECTORS, default="haar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str = "demo.py") -> None:
    argv = sys.argv[1:] if argv is None else argv
    backend = cli.select_backend(argv)

    with cli.native_log_filtered():
        from fer_keras import demo
        from fer_keras.demo_analysis import DemoAnalyzer

    args = parse_args(argv, prog)
    analyzer = DemoAnalyzer(args.model, detector=args.detector)
    try:
        server = demo.DemoServer(analyzer, args.host, args.port,
                                 max_upload_bytes=round(args.max_upload_mb * 2**20))
    except OSError as err:
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: "
                 f"{err.strerror or err}. Choose another --port (0: any free port).")
    if demo.is_public(args.host):
        print(f"warning: serving on {args.host}: anyone who can reach this machine on "
              f"port {server.server_address[1]} can use the demo and send it photos. "
              "Leave out --host to keep it to this computer.", file=sys.stderr)
    print(f"Web demo of {analyzer.model_path.name} ({backend} backend) at {server.url} "
          "(Ctrl+C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        server.server_close()

