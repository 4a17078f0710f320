import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "seed":
        from .seed import main as seed_main
        return seed_main(argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    from .server import serve
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
