// Package fastyaml reads the plain block YAML runbooks are written in, several
// times faster than yaml.v3, and builds the tree yaml.v3 would; it leaves
// everything else, every error included, to yaml.v3. Its tests hold the two
// parsers to the same trees.
package fastyaml
