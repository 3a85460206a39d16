package problem

// Alarm is the problem for an etcd alarm raised on member, in plain words:
// what it does to the cluster, and (Kind.Fix) what to do. alarm is etcd's
// name for it (pb.AlarmType's String: "NOSPACE", "CORRUPT"); space, when
// known, describes the member's database ("65MiB on disk, 57MiB in use,
// quota 64MiB"). `status` and the agent word alarms the same way through it.
func Alarm(alarm, member, space string) Problem {
	switch alarm {
	case "NOSPACE":
		if space != "" {
			space = " (" + space + ")"
		}
		return AlarmNoSpace.Newf(member, "database space exceeded: member %s's database reached its quota%s and etcd raised the NOSPACE alarm, so the whole cluster refuses writes; reads still work", member, space)
	case "CORRUPT":
		return AlarmCorrupt.Newf(member, "data corruption: etcd's hash check found member %s's data different from its peers and raised the CORRUPT alarm, so the cluster refuses writes", member)
	}
	return AlarmOther.Newf(member, "etcd alarm %s raised on member %s", alarm, member)
}
