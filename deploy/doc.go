// Package deploy holds what the docker-compose stack (docker-compose.yml
// at the repository root) mounts besides the image: the script making its
// secrets (gen-secrets.sh) and the directory they go to. Its test loads
// the compose file with the Compose Specification's reference parser and
// checks that everything the stack names exists in the repository or is
// made by gen-secrets.sh, and that the mcpauthz services' environment is
// configuration mcpauthz accepts.
package deploy
