package config

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Lines maps a YAML path ("cluster.size", "etcd.extraFlags[1]") to the line
// of the file that sets it.
type Lines map[string]int

// DecodeYAML decodes a YAML document into out, a pointer to a struct with
// yaml tags, and returns every problem at once instead of yaml's first
// failure: unknown keys (with a "did you mean"), values of the wrong type,
// keys set twice. Each problem carries its YAML path and line and says what
// was expected in the operator's words, never a Go type. The keys allowed
// at each level come from out's yaml tags, so they cannot drift from the
// types. Every value that decodes is set in out; a value with a problem is
// left zero. A syntax error is the one problem that stops it: it comes
// with nil Lines.
func DecodeYAML(data []byte, out any) (Lines, []Problem) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []Problem{syntaxProblem(err)}
	}
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic("config.DecodeYAML: out must be a non-nil pointer")
	}
	d := &decoder{lines: Lines{}, root: v.Elem().Type(), active: map[*yaml.Node]bool{}}
	if len(doc.Content) > 0 {
		d.value(doc.Content[0], v.Elem(), "", doc.Content[0].Line)
	}
	sort.SliceStable(d.ps, func(i, j int) bool { return d.ps[i].Line < d.ps[j].Line })
	return d.lines, d.ps
}

// yamlLine is how the yaml library starts a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func syntaxProblem(err error) Problem {
	p := Problem{
		Problem: strings.TrimPrefix(err.Error(), "yaml: "),
		Fix:     "fix the YAML syntax: indent with spaces, put a space after each colon, close every quote and bracket",
	}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Problem = err.Error()[len(m[0]):]
	}
	p.Problem = "not valid YAML: " + p.Problem
	return p
}

type decoder struct {
	lines  Lines
	ps     []Problem
	root   reflect.Type
	active map[*yaml.Node]bool // aliases being expanded, to refuse one that contains itself
	keys   map[string][]string // lower-case key name -> every path of it, for "did you mean"
}

func (d *decoder) problem(path string, line int, problem, fix string) {
	d.ps = append(d.ps, Problem{Field: path, Line: line, Problem: problem, Fix: fix})
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value decodes n into v; line is where the key that holds it is set.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string, line int) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || d.active[n.Alias] {
			d.problem(path, line, "the alias *"+n.Value+" refers to a value that contains it", "copy the value instead of the alias")
			return
		}
		d.active[n.Alias] = true
		defer delete(d.active, n.Alias)
		d.value(n.Alias, v, path, line)
		return
	}
	if isNull(n) {
		return // unset: the default applies
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(n, v.Elem(), path, line)
		return
	}
	if isScalarType(t) {
		d.scalar(n, v, path, line)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.wrongType(n, t, path, line)
			return
		}
		d.structure(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode || t.Key().Kind() != reflect.String {
			d.wrongType(n, t, path, line)
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		for _, e := range d.entries(n, path) {
			p := join(path, e.name)
			d.lines[p] = e.key.Line
			elem := reflect.New(t.Elem()).Elem()
			d.value(e.val, elem, p, e.key.Line)
			v.SetMapIndex(reflect.ValueOf(e.name).Convert(t.Key()), elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.wrongType(n, t, path, line)
			return
		}
		v.Set(reflect.MakeSlice(t, 0, len(n.Content)))
		for _, e := range n.Content {
			if isNull(e) && !nillable(t.Elem().Kind()) {
				continue // yaml leaves an empty item out
			}
			p := fmt.Sprintf("%s[%d]", path, v.Len())
			d.lines[p] = e.Line
			elem := reflect.New(t.Elem()).Elem()
			d.value(e, elem, p, e.Line)
			v.Set(reflect.Append(v, elem))
		}
	default:
		d.scalar(n, v, path, line)
	}
}

func isNull(n *yaml.Node) bool {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func nillable(k reflect.Kind) bool {
	return k == reflect.Pointer || k == reflect.Interface || k == reflect.Map || k == reflect.Slice
}

// isScalarType: a type written as one YAML scalar, including types that
// parse themselves (Duration, Size).
func isScalarType(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	if pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.Interface:
		return false
	}
	return true
}

// scalar decodes one scalar with the yaml library itself, so values mean
// exactly what they meant before; only its error is replaced.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string, line int) {
	if n.Kind != yaml.ScalarNode && v.Kind() != reflect.Interface {
		d.wrongType(n, v.Type(), path, line)
		return
	}
	if n.ShortTag() == "!!float" && isInteger(v.Kind()) {
		// yaml would cut 3.5 to 3 without a word.
		d.wrongType(n, v.Type(), path, line)
		return
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		d.wrongType(n, v.Type(), path, line)
		return
	}
	v.Set(tmp.Elem())
}

func isInteger(k reflect.Kind) bool {
	return reflect.Int <= k && k <= reflect.Uint64
}

func (d *decoder) wrongType(n *yaml.Node, t reflect.Type, path string, line int) {
	d.problem(path, line, "want "+want(t)+", got "+got(n), hint(n, t))
}

// entry is one key of a mapping, merged keys (<<: *anchor) included.
type entry struct {
	name     string
	key, val *yaml.Node
}

// entries lists a mapping's keys in file order, then the keys merged in
// with << that the mapping does not set itself (yaml's precedence). A key
// set twice is a problem, as it was for the yaml library.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var out []entry
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			merges = append(merges, val)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.problem(path, k.Line, "a key must be a plain name, not a "+strings.TrimPrefix(got(k), "a "), "write the key as a name")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.problem(join(path, k.Value), k.Line, fmt.Sprintf("is set twice (first at line %d)", first), "keep one of them")
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, entry{k.Value, k, val})
	}
	for _, m := range merges {
		for _, src := range mergeSources(m) {
			if src.Kind != yaml.MappingNode {
				d.problem(join(path, "<<"), m.Line, "want a mapping or a list of mappings to merge, got "+got(src), "merge an anchored mapping: <<: *name")
				continue
			}
			for _, e := range d.entries(src, path) {
				if _, set := seen[e.name]; !set {
					seen[e.name] = e.key.Line
					out = append(out, e)
				}
			}
		}
	}
	return out
}

func mergeSources(m *yaml.Node) []*yaml.Node {
	deref := func(n *yaml.Node) *yaml.Node {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			return n.Alias
		}
		return n
	}
	m = deref(m)
	if m.Kind != yaml.SequenceNode {
		return []*yaml.Node{m}
	}
	out := make([]*yaml.Node, len(m.Content))
	for i, e := range m.Content {
		out[i] = deref(e)
	}
	return out
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	fields := fieldsOf(v.Type())
	for _, e := range d.entries(n, path) {
		p := join(path, e.name)
		f, ok := fieldNamed(fields, e.name)
		if !ok {
			d.problem(p, e.key.Line, d.unknown(e.name, path, fields), "")
			continue
		}
		d.lines[p] = e.key.Line
		d.value(e.val, v.FieldByIndex(f.index), p, e.key.Line)
	}
}

// field is one key a struct takes.
type field struct {
	name  string
	index []int
	typ   reflect.Type
}

// fieldsOf lists the keys of t as the yaml library reads them: the yaml
// tag's name (default: the field name in lower case), exported fields only,
// ",inline" structs flattened, "-" skipped.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() && !sf.Anonymous {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && sf.Type.Kind() == reflect.Struct {
			for _, f := range fieldsOf(sf.Type) {
				f.index = append([]int{i}, f.index...)
				out = append(out, f)
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, field{name: name, index: []int{i}, typ: sf.Type})
	}
	return out
}

func fieldNamed(fs []field, name string) (field, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknown is the problem text for an unknown key: the nearest key of the
// same mapping by edit distance, else the same key (or a near one) at
// another level, else the keys this mapping takes.
func (d *decoder) unknown(name, path string, siblings []field) string {
	best, bestDist := "", maxDistance(name)+1
	for _, f := range siblings {
		if dist := distance(strings.ToLower(name), strings.ToLower(f.name)); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best == "" {
		if d.keys == nil {
			d.keys = map[string][]string{}
			indexKeys(d.root, "", d.keys, map[reflect.Type]bool{})
		}
		for lower, paths := range d.keys {
			alt := strings.Join(paths, " or ")
			if dist := distance(strings.ToLower(name), lower); dist < bestDist || (dist == bestDist && alt < best) {
				best, bestDist = alt, dist
			}
		}
	}
	if best != "" {
		return "unknown key; did you mean " + best + "?"
	}
	names := make([]string, len(siblings))
	for i, f := range siblings {
		names[i] = f.name
	}
	where := path
	if where == "" {
		where = "the top level"
	}
	return fmt.Sprintf("unknown key; %s takes %s", where, strings.Join(names, ", "))
}

// indexKeys records every key path of the schema under its lower-case key
// name (paths into lists and maps use [] and .*).
func indexKeys(t reflect.Type, path string, out map[string][]string, onPath map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if onPath[t] || isScalarType(t) {
		return
	}
	onPath[t] = true
	defer delete(onPath, t)
	switch t.Kind() {
	case reflect.Struct:
		for _, f := range fieldsOf(t) {
			p := join(path, f.name)
			lower := strings.ToLower(f.name)
			out[lower] = append(out[lower], p)
			indexKeys(f.typ, p, out, onPath)
		}
	case reflect.Slice, reflect.Array:
		indexKeys(t.Elem(), path+"[]", out, onPath)
	case reflect.Map:
		indexKeys(t.Elem(), join(path, "*"), out, onPath)
	}
}

// maxDistance is how many edits still count as a typo: one for short
// keys, two from six letters on.
func maxDistance(name string) int {
	if utf8.RuneCountInString(name) >= 6 {
		return 2
	}
	return 1
}

// distance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours ("szie") cost one.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// wanter is a type that says in words what it accepts (Duration, Size).
type wanter interface{ want() string }

// want says what a value of type t looks like, in the words of docs/configuration.md.
func want(t reflect.Type) string {
	if w, ok := reflect.Zero(t).Interface().(wanter); ok {
		return w.want()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return want(t.Elem())
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number (0 or more)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		if e := t.Elem(); isScalarType(e) {
			return "a list of " + plural(want(e))
		}
		return "a list"
	case reflect.Struct:
		fs := fieldsOf(t)
		names := make([]string, len(fs))
		for i, f := range fs {
			names[i] = f.name
		}
		return "a mapping (keys: " + strings.Join(names, ", ") + ")"
	case reflect.Map:
		return "a mapping"
	}
	return "a value"
}

// plural turns "an integer" into "integers", "a duration like 90s" into
// "durations like 90s".
func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "an "), "a ")
	word, rest, _ := strings.Cut(s, " ")
	if rest != "" {
		rest = " " + rest
	}
	return word + "s" + rest
}

// got shows the value the file has: a scalar as written (strings quoted),
// a mapping or a list by its kind.
func got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		if n.Alias != nil {
			return got(n.Alias)
		}
		return "an alias"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:37]) + "..."
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(v)
	}
	return v
}

// hint is the fix for the common slips: a quoted number, a duration
// without unit, one value where a list belongs.
func hint(n *yaml.Node, t reflect.Type) string {
	if n.Kind != yaml.ScalarNode {
		return ""
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		plain := *n
		plain.Style, plain.Tag = 0, ""
		if plain.Decode(reflect.New(t).Interface()) == nil {
			return "remove the quotes"
		}
	}
	if t == reflect.TypeFor[Duration]() {
		if _, err := strconv.ParseUint(n.Value, 10, 64); err == nil {
			return "add a unit (ms, s, m, h or d), e.g. " + n.Value + "s"
		}
	}
	if t.Kind() == reflect.Slice && isScalarType(t.Elem()) {
		return "write a list, even of one: [" + n.Value + "]"
	}
	return ""
}

func (Duration) want() string { return "a duration like 90s, 10m, 720h or 30d" }
func (Size) want() string     { return "a size like 512MiB, 4GiB or a byte count" }
