from zarrfs.cli import main

main(prog_name="zarrfs")
